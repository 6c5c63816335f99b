"""contracts.diff and loading contracts at a git ref or base directory."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from contracts_testkit import SHOP_FIXTURE

from sagaproof import contracts


def _edit(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(path.read_text()) if path.suffix != ".json" else json.loads(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc) if path.suffix != ".json" else json.dumps(doc))


def _order_payload(doc: dict) -> dict:
    return doc["components"]["messages"]["OrderCreated"]["payload"]


def test_no_change_no_diff() -> None:
    cs = contracts.load_dir(SHOP_FIXTURE)
    assert contracts.diff(cs, contracts.load_dir(SHOP_FIXTURE)) == []


def test_required_field_renamed_by_producer_breaks_consumers(shop_copy: Path) -> None:
    def rename(doc: dict) -> None:
        pl = _order_payload(doc)
        pl["required"] = ["orderId" if r == "order_id" else r for r in pl["required"]]
        pl["properties"]["orderId"] = pl["properties"].pop("order_id")
    _edit(shop_copy / "order.yaml", rename)
    changes = contracts.diff(contracts.load_dir(SHOP_FIXTURE), contracts.load_dir(shop_copy))
    removed = [c for c in changes if c.kind == "required-removed"]
    assert removed and removed[0].breaking_for == "consumers" and removed[0].subject == "orders.created"
    assert "renamed to 'orderId'" in removed[0].description and "payment" in removed[0].description
    assert any(c.kind == "required-added" and c.breaking_for is None for c in changes)


def test_consumer_new_required_field_breaks_producers(shop_copy: Path) -> None:
    def add(doc: dict) -> None:
        pl = doc["channels"]["ordersCreated"]["messages"]["OrderCreated"]["payload"]
        pl["required"].append("coupon")
        pl["properties"]["coupon"] = {"type": "string"}
    _edit(shop_copy / "payment.yaml", add)
    changes = contracts.diff(contracts.load_dir(SHOP_FIXTURE), contracts.load_dir(shop_copy))
    added = [c for c in changes if c.kind == "required-added"]
    assert added and added[0].breaking_for == "producers" and added[0].role == "consumer"


def test_safe_changes_are_not_breaking(shop_copy: Path) -> None:
    def widen_consumer(doc: dict) -> None:
        pl = doc["channels"]["ordersCreated"]["messages"]["OrderCreated"]["payload"]
        pl["required"].remove("total")  # consumer needs less: safe
    _edit(shop_copy / "payment.yaml", widen_consumer)

    def narrow_producer(doc: dict) -> None:
        pl = _order_payload(doc)
        pl["properties"]["customer"]["maxLength"] = 64  # producer sends less: safe
    _edit(shop_copy / "order.yaml", narrow_producer)
    changes = contracts.diff(contracts.load_dir(SHOP_FIXTURE), contracts.load_dir(shop_copy))
    assert changes and not any(c.breaking for c in changes), [c.to_dict() for c in changes]


def test_enum_value_removed_by_consumer_and_type_changed(shop_copy: Path) -> None:
    def narrow(doc: dict) -> None:
        pl = doc["channels"]["inventoryReserved"]["messages"]["InventoryReserved"]["payload"]
        pl["properties"]["reservation_id"] = {"type": "string"}
    _edit(shop_copy / "shipping.json", narrow)
    changes = contracts.diff(contracts.load_dir(SHOP_FIXTURE), contracts.load_dir(shop_copy))
    tc = [c for c in changes if c.kind == "type-changed"]
    assert tc and tc[0].breaking_for == "producers" and tc[0].path == "/properties/reservation_id"


def test_subject_renamed_breaks_consumers(shop_copy: Path) -> None:
    _edit(shop_copy / "inventory.yaml",
          lambda d: d["channels"]["inventoryReserved"].__setitem__("address", "inventory.held"))
    _edit(shop_copy / "shipping.json",
          lambda d: d["channels"]["inventoryReserved"].__setitem__("address", "inventory.held"))
    changes = contracts.diff(contracts.load_dir(SHOP_FIXTURE), contracts.load_dir(shop_copy))
    ren = [c for c in changes if c.kind == "subject-renamed"]
    assert ren and ren[0].breaking_for == "consumers" and "inventory.held" in ren[0].description


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway git repository (in tmp_path) holding the fixture shop at commit HEAD."""
    r = tmp_path / "repo"
    shutil.copytree(SHOP_FIXTURE, r / "contracts")
    _git(r, "init", "-q")
    _git(r, "add", ".")
    _git(r, "commit", "-q", "-m", "base")
    return r


def test_load_at_git_ref_with_dir_and_sources(repo: Path) -> None:
    _edit(repo / "contracts" / "order.yaml", lambda d: _order_payload(d)["required"].remove("customer"))
    base = contracts.load_at_git_ref(repo, "HEAD", repo / "contracts")
    head = contracts.load_dir(repo / "contracts")
    changes = contracts.diff(base, head)
    assert [c.kind for c in changes] == ["required-removed"]
    assert changes[0].breaking_for is None  # payment does not need 'customer'
    # explicit sources; a file that does not exist at the ref is skipped (new service)
    (repo / "contracts" / "extra.yaml").write_text((repo / "contracts" / "inventory.yaml").read_text())
    base2 = contracts.load_at_git_ref(repo, "HEAD", {"order": [repo / "contracts/order.yaml"],
                                                     "extra": [repo / "contracts/extra.yaml"]})
    assert base2.services == ["order", "extra"] or "extra" not in base2.services
    assert "orders.created" in base2.channels and "inventory.reserved" not in base2.channels


def test_load_at_base_directory(shop_copy: Path, tmp_path: Path) -> None:
    base = contracts.load_at_git_ref(tmp_path, str(SHOP_FIXTURE.parent), shop_copy.parent)
    assert "orders.created" in base.channels


def test_bad_git_ref_is_a_clear_error(repo: Path) -> None:
    with pytest.raises(contracts.ContractSourceError, match="does not exist"):
        contracts.load_at_git_ref(repo, "no-such-branch", repo / "contracts")


def test_diff_render_and_json(shop_copy: Path) -> None:
    from rich.console import Console

    _edit(shop_copy / "order.yaml", lambda d: _order_payload(d)["required"].remove("order_id"))
    changes = contracts.diff(contracts.load_dir(SHOP_FIXTURE), contracts.load_dir(shop_copy))
    console = Console(record=True, width=200)
    contracts.render.diff_table(changes, console)
    text = console.export_text()
    assert "breaking change" in text and "consumers" in text
    d = contracts.render.diff_to_dict(changes)
    assert d["breaking"] is True and json.dumps(d)


def test_change_wording_uses_json_terms() -> None:
    from sagaproof.contracts.diff import _schema_changes

    base = {"type": "object", "properties": {"n": {"minimum": 1.0}, "s": {"type": "string"}, "c": {"const": None}}}
    head = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 2, "maximum": 10.5},
                                             "s": {"type": "string", "maxLength": 3.0, "format": "uuid"},
                                             "c": {}}}
    texts = [t for _, _, _, t in _schema_changes(base, head)]
    joined = " | ".join(texts)
    assert "None" not in joined and "1.0" not in joined and "3.0" not in joined, joined
    assert "type of '/properties/n' narrowed from no type keyword to \"integer\"" in joined
    assert "minimum of '/properties/n' changed from 1 to 2" in joined
    assert "maximum of '/properties/n' changed from no maximum to 10.5" in joined
    assert "maxLength of '/properties/s' changed from no maxLength to 3" in joined
    assert "format changed from no format keyword to \"uuid\"" in joined
    assert "const changed from null to no const keyword" in joined


def test_load_at_git_ref_without_any_contract_fails_closed(repo: Path) -> None:
    # a commit with nothing in it (as a ref from before the contracts existed)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    tree = subprocess.run(["git", "-C", str(repo), "mktree"], input="", capture_output=True, text=True, check=True,
                          env=env).stdout.strip()
    commit = subprocess.run(["git", "-C", str(repo), "commit-tree", tree, "-m", "empty"], capture_output=True,
                            text=True, check=True, env=env).stdout.strip()
    _git(repo, "tag", "empty", commit)
    with pytest.raises(contracts.ContractSourceError, match="No AsyncAPI document"):
        contracts.load_at_git_ref(repo, "empty", repo / "contracts")
    with pytest.raises(contracts.ContractSourceError, match="No contract file"):
        contracts.load_at_git_ref(repo, "empty", {"order": [repo / "contracts/order.yaml"]})
