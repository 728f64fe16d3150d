"""The clients' docs name only URLs this project's infrastructure really serves.

An API Gateway WebSocket API is reached at ``wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}``
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-set-up-websocket-deployment.html);
the stage is ``stage_name``'s default in ``infra/variables.tf`` and the custom domain's path is
the one ``infra/outputs.tf`` gives ``websocket_url``. Every ``wss://`` example in the client docs
(the README's wire contract and "Clients" sections, the packages' READMEs, the ``.d.ts``) uses one
of those two forms.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def stage_name() -> str:
    variables = (ROOT / "infra" / "variables.tf").read_text()
    found = re.search(r'variable "stage_name" \{.*?default\s*=\s*"([^"]+)"', variables, re.DOTALL)
    assert found, "infra/variables.tf declares stage_name with a default"
    return found.group(1)


def custom_domain_path() -> str:
    outputs = (ROOT / "infra" / "outputs.tf").read_text()
    found = re.search(r'"wss://\$\{var\.custom_domain_name\}(/[^"]*)"', outputs)
    assert found, "infra/outputs.tf gives websocket_url for a custom domain"
    return found.group(1)


def readme_sections(*titles: str) -> str:
    readme = (ROOT / "README.md").read_text()
    parts = re.split(r"^(?=## )", readme, flags=re.MULTILINE)
    return "".join(part for part in parts if part.splitlines()[0] in titles)


def test_every_wss_example_in_the_client_docs_is_a_url_the_infrastructure_serves() -> None:
    docs = {
        "README.md (Wire contract, Clients)": readme_sections("## Wire contract", "## Clients"),
        "clients/js/README.md": (ROOT / "clients/js/README.md").read_text(),
        "clients/python/README.md": (ROOT / "clients/python/README.md").read_text(),
        "clients/js/timeline-ws-client.d.ts": (
            ROOT / "clients/js/timeline-ws-client.d.ts"
        ).read_text(),
    }
    execute_api = re.compile(
        r"wss://[^./\s`\"]+\.execute-api\.[^./\s`\"]+\.amazonaws\.com/"
        + re.escape(stage_name())
        + r"(?![\w/-])"
    )
    template = re.compile(r"wss://\{api-id\}\.execute-api\.\{region\}\.amazonaws\.com/\{stage\}")
    custom = re.compile(
        r"wss://(?!\S*execute-api)[^/\s`\"]+" + re.escape(custom_domain_path()) + r"(?![\w/-])"
    )
    checked = 0
    for name, text in docs.items():
        for found in re.finditer(r"wss://[^\s`\"'),]+", text):
            if found.group().startswith("wss://…"):
                continue  # prose about the scheme, no URL
            checked += 1
            assert (
                execute_api.match(text, found.start())
                or template.match(text, found.start())
                or custom.match(text, found.start())
            ), (
                f"{name}: {found.group()} is neither …/{stage_name()} nor <domain>{custom_domain_path()}"
            )
    assert checked >= 5
