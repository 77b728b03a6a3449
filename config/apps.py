"""The web tier's own wiring, run once the apps are loaded."""

from __future__ import annotations

from django.apps import AppConfig


class WebTierConfig(AppConfig):
    name = "config"
    label = "crypto_web"
    verbose_name = "crypto-grpc web tier"

    def ready(self) -> None:
        hide_unused_admin_models()
        silence_telegram_login_notifications()


# Models of features this service does not use, registered in the admin by django-cfg apps that must stay
# installed (the user admin needs accounts and TOTP): OAuth, e-mail one-time codes, sign-up sources, TOTP
# devices. Users, groups, user activity and django-axes' login records stay in the admin.
HIDDEN_ADMIN_MODELS = (
    "django_cfg_accounts.OAuthConnection", "django_cfg_accounts.OAuthState", "django_cfg_accounts.OTPSecret",
    "django_cfg_accounts.RegistrationSource", "django_cfg_accounts.UserRegistrationSource",
    "django_cfg_totp.BackupCode", "django_cfg_totp.TOTPDevice", "django_cfg_totp.TwoFactorSession",
)


def hide_unused_admin_models() -> None:
    from django.apps import apps
    from django.contrib import admin

    for label in HIDDEN_ADMIN_MODELS:
        try:
            model = apps.get_model(label)
        except LookupError:  # a django-cfg release without it: nothing to hide
            continue
        if admin.site.is_registered(model):
            admin.site.unregister(model)


def silence_telegram_login_notifications() -> None:
    """django-cfg connects Telegram notifications to every admin login and, through django-axes, to failed
    logins and lockouts. This service configures no Telegram, so each login logged "ERROR django_cfg.telegram
    Telegram is not configured" and sent nothing."""
    from axes.signals import user_locked_out, user_login_failed
    from django.contrib.auth.signals import user_logged_in
    from django_cfg.middleware import admin_notifications

    user_logged_in.disconnect(admin_notifications.notify_admin_login_success)
    for name in ("notify_failed_admin_login", "notify_admin_lockout"):
        receiver = getattr(admin_notifications, name, None)
        if receiver is not None:
            user_login_failed.disconnect(receiver)
            user_locked_out.disconnect(receiver)
