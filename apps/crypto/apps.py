from django.apps import AppConfig


class CryptoConfig(AppConfig):
    name = "apps.crypto"
    label = "crypto"
    verbose_name = "Crypto bots"
    default_auto_field = "django.db.models.BigAutoField"
