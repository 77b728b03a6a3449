"""The web tier's own wiring, run once the apps are loaded."""

from __future__ import annotations

from django.apps import AppConfig


class WebTierConfig(AppConfig):
    name = "config"
    label = "crypto_web"
    verbose_name = "crypto-grpc web tier"

    def ready(self) -> None:
        silence_telegram_login_notifications()


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
