"""``cache.targeted_fields``: the edge cache's target list (RFC 9213), validated."""

import pytest
from pydantic import ValidationError

from dispa.config.edge import CacheSettings, EdgeConfig


def test_the_default_target_list_is_cdn_cache_control():
    assert CacheSettings().targeted_fields == ("cdn-cache-control",)


def test_names_are_lower_cased_and_kept_in_order():
    settings = CacheSettings(targeted_fields=["Dispa-Cache-Control", "CDN-Cache-Control"])
    assert settings.targeted_fields == ("dispa-cache-control", "cdn-cache-control")


def test_an_empty_list_turns_targeted_fields_off():
    assert CacheSettings(targeted_fields=[]).targeted_fields == ()


@pytest.mark.parametrize(
    ("names", "complaint"),
    [
        (["cdn cache control"], "not a field name"),
        (["cdn-cache-control:"], "not a field name"),
        ([""], "not a field name"),
        (["cdn-cäche-control"], "not a field name"),
        (["cache-control"], "Cache-Control itself"),
        (["Cache-Control"], "Cache-Control itself"),
        (["cdn-cache-control", "CDN-Cache-Control"], "twice"),
    ],
)
def test_bad_names_are_refused_with_the_field_named(names, complaint):
    with pytest.raises(ValidationError) as caught:
        EdgeConfig.model_validate(
            {
                "edge": {"name": "e", "data_dir": "/tmp/x"},
                "cores": ["127.0.0.1:1"],
                "listeners": [{"name": "public", "address": "127.0.0.1:8080"}],
                "cache": {"targeted_fields": names},
            }
        )
    text = str(caught.value)
    assert "cache.targeted_fields" in text
    assert complaint in text
