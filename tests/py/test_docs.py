"""docs/config.md is generated from the config structs' doc comments and must not go stale."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "config-doc.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_ocsf_attribute_table_matches_the_official_schema():
    """src/normalize/ocsf_paths.txt, against which parsers' output paths are checked, is the
    official 1.8.0 schema's (regenerated from the PyPI export)."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "ocsf-paths.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_config_section_has_a_reference_entry():
    text = (ROOT / "docs" / "config.md").read_text()
    for section in ["ListenerConfig", "TlsConfig", "AdminConfig", "LimitsConfig", "SinkConfig", "SourceConfig",
                    "AuthConfig", "TrustConfig", "StatusConfig", "TelemetryConfig"]:
        assert "## `%s`" % section in text, section
