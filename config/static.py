"""Static files for the web tier: hashed names once collected, the packages' own files before that."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class CollectedOrFoundStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Manifest storage (hashed, compressed, cached for a year) for what `collectstatic` wrote.

    A name the manifest lacks (no `collectstatic` yet, as in a fresh clone, or a package upgraded since)
    keeps its plain name instead of failing the page with "Missing staticfiles manifest entry";
    WhiteNoise serves it straight from the app that ships it (WHITENOISE_USE_FINDERS). The image runs
    `collectstatic` at build time, so there every name is hashed.
    """

    manifest_strict = False

    def stored_name(self, name: str) -> str:
        try:
            return super().stored_name(name)
        except ValueError:  # not collected: neither in the manifest nor under STATIC_ROOT
            return name
