"""Django project configuration (django-cfg typed settings)."""
