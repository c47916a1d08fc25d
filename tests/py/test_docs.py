"""docs/config.md is generated from the config structs' doc comments and must not go stale."""
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "config-doc.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_config_section_has_a_reference_entry():
    text = (ROOT / "docs" / "config.md").read_text()
    for section in ["ListenerConfig", "TlsConfig", "AdminConfig", "LimitsConfig", "SinkConfig", "SourceConfig",
                    "AuthConfig", "TrustConfig", "StatusConfig", "TelemetryConfig"]:
        assert "## `%s`" % section in text, section
