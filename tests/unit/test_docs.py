"""The README's configuration reference names every Terraform variable and function setting there is."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_root_variable_is_documented() -> None:
    names = {
        name
        for path in (ROOT / "terraform").glob("*.tf")
        for name in re.findall(r'^variable "([^"]+)"', path.read_text(), re.MULTILINE)
    }
    assert names, "no variables found"
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"variables missing from README: {missing}"


def test_every_function_setting_is_documented() -> None:
    text = "\n".join(path.read_text() for path in (ROOT / "terraform").glob("*.tf"))
    blocks = re.findall(
        r"(?:environment_variables = merge\(local\.function_environment, |function_environment = )"
        r"\{(.*?)\n\s*\}",
        text,
        re.S,
    )
    names = {name for block in blocks for name in re.findall(r"^\s+([A-Z][A-Z0-9_]+)\s+=", block, re.M)}
    assert "COMPANY_TABLE" in names and "PUBLIC_BASE_URL" in names
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"function settings missing from README: {missing}"


def test_root_variables_live_in_variables_tf() -> None:
    strays = [
        path.name
        for path in (ROOT / "terraform").glob("*.tf")
        if path.name != "variables.tf" and re.search(r'^variable "', path.read_text(), re.MULTILINE)
    ]
    assert not strays, f"declare root variables in variables.tf, not in {strays}"


def test_the_readme_shows_the_lifecycle_table_as_the_code_enforces_it() -> None:
    from ai_comms.models.lifecycle import TRANSITIONS, mermaid

    assert f"```mermaid\n{mermaid()}\n```" in README
    for transition in TRANSITIONS:
        assert f"| `{transition.name}` |" in README


def variable_blocks() -> list[tuple[str, str]]:
    source = (ROOT / "terraform" / "variables.tf").read_text()
    return re.findall(r'^variable "([^"]+)" \{\n(.*?)^\}', source, re.M | re.S)


def shown_type(declared: str) -> str:
    """A one-line type as declared; an object type as its outer types around "…"."""
    if not declared.endswith("{"):
        return declared
    opening = declared.removesuffix("{")
    return opening + "…" + ")" * opening.count("(")


def test_the_readme_variables_table_is_variables_tf() -> None:
    section = README[README.index("### Terraform variables (`terraform/variables.tf`)") :]
    section = section[: section.index("\n### ", 1)]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| `?(.*?)`? \| (.*?) \| (.*) \|$", section, re.M)
    blocks = variable_blocks()
    assert [name for name, *_ in rows] == [name for name, _ in blocks], "one row per variable, in order"
    for (name, body), (_, type_, default, description) in zip(blocks, rows, strict=True):
        [declared] = re.findall(r"^  type\s+= (.*)$", body, re.M)
        assert type_ == shown_type(declared), name
        [value] = re.findall(r"^  default\s+= (.*)$", body, re.M) or ["(required)"]
        assert default == ("see `variables.tf`" if value.endswith(("{", "[")) else f"`{value}`"), name
        one_line = re.findall(r'^  description = "(.*)"$', body, re.M)
        if one_line:
            assert description == one_line[0].replace('\\"', '"'), name
        else:
            assert description, name
