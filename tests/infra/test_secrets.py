"""No secret in what is deployed or committed for deployment: infra/, the parameters, host.json, azure.yaml,
policies.json and the app's code. The app and its deployment use identities only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = {
    "account key": re.compile(r"AccountKey\s*=", re.I),
    "listKeys": re.compile(r"listKeys\s*\(", re.I),
    "SAS": re.compile(r"SharedAccessSignature|[?&]sig=[A-Za-z0-9%+/=]{10,}", re.I),
    "shared access key": re.compile(r"SharedAccessKey\s*=", re.I),
    "connection string with a key": re.compile(r"connectionString[^\n]{0,80}(Key|sig)\s*=", re.I),
    "base64 key": re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"),
    "password": re.compile(r"(password|passwd|pwd|secret)\s*[:=]\s*['\"][^'\"\s${}]{4,}['\"]", re.I),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}


def scanned() -> list[Path]:
    # not what Python or azd make there when the hooks run (__pycache__, the hooks' virtual environment)
    files = [p for p in (ROOT / "infra").rglob("*") if p.is_file()
             and not {"__pycache__", "hooks_env"} & set(p.relative_to(ROOT).parts)]
    files += [ROOT / "host.json", ROOT / "azure.yaml", ROOT / "policies.json", ROOT / "function_app.py"]
    files += [*ROOT.joinpath("functions").rglob("*.py"), *ROOT.joinpath("shared").rglob("*.py"),
              *ROOT.joinpath("shared").rglob("*.json")]
    return sorted(files)


def findings(text: str) -> list[str]:
    return [name for name, pattern in PATTERNS.items() if pattern.search(text)]


def test_scan_covers_the_deployment():
    names = {p.relative_to(ROOT).as_posix() for p in scanned()}
    assert {"infra/main.bicep", "infra/main.parameters.json", "host.json", "infra/hooks/postdeploy.py",
            "shared/settings.py"} <= names


@pytest.mark.parametrize("sample", [
    "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc;",
    "var k = stg.listKeys().keys[0].value",
    "https://a.blob.core.windows.net/c?sv=2022&sig=AbCdEfGhIjKlMnOp%3D",
    "Endpoint=sb://x/;SharedAccessKeyName=r;SharedAccessKey=abc",
    "adminPassword: 'Hunter2Hunter2'",
    # a Logic App trigger URL, the kind alertWebhookUrl takes: its sig= is a key
    "https://prod-1.westeurope.logic.azure.com/workflows/x/triggers/manual/paths/invoke?api-version=2016-10-01&sv=1.0"
    "&sig=AbCdEfGhIjKlMnOp0123",
    "A" * 86 + "==",
])
def test_the_scan_finds_secrets(sample):
    assert findings(sample)


def test_the_scan_passes_identity_settings():
    assert findings("APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'") == []
    assert findings("AzureWebJobsStorage__credential: 'managedidentity'") == []


@pytest.mark.parametrize("path", scanned(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_secrets(path):
    assert findings(path.read_text(encoding="utf-8", errors="replace")) == []
