from typing import Any

from django.apps import AppConfig, apps


class CryptoConfig(AppConfig):
    name = "apps.crypto"
    label = "crypto"
    verbose_name = "Crypto bots"
    default_auto_field = "django.db.models.BigAutoField"
    # This process's replica: the Runtime (set by build_runtime) and the servicer over it (set by
    # start_replica), read by handlers.grpc_handlers(). Typed Any so this module imports nothing of the
    # service: the hook reaches up to the servicer without an import cycle.
    runtime: Any = None
    servicer: Any = None

    def replica_servicer(self) -> Any:
        if self.servicer is None:
            raise RuntimeError("no crypto servicer: start_replica() must build it before grpc_handlers()")
        return self.servicer


def crypto_app() -> CryptoConfig:
    config = apps.get_app_config("crypto")
    assert isinstance(config, CryptoConfig)
    return config
