from typing import Any

from django.apps import AppConfig, apps


class CryptoConfig(AppConfig):
    name = "apps.crypto"
    label = "crypto"
    verbose_name = "Crypto bots"
    default_auto_field = "django.db.models.BigAutoField"
    # The replica's Runtime in this process: set by build_runtime (rungrpc), read by grpc_handlers().
    # Typed Any so this module imports nothing of the service (apps/ stays free of import cycles).
    runtime: Any = None

    def replica_runtime(self) -> Any:
        if self.runtime is None:
            raise RuntimeError("no crypto runtime: build_runtime() must run before grpc_handlers()")
        return self.runtime


def crypto_app() -> CryptoConfig:
    config = apps.get_app_config("crypto")
    assert isinstance(config, CryptoConfig)
    return config
