"""``make demo`` (``python -m demo``): the whole job on the emulators, through the real function
handlers, ends with every invariant checked and passing."""

from __future__ import annotations

import io

from demo.run import BAD, OK, run


def marks(text: str) -> list[str]:
    return [line.strip()[0] for line in text.splitlines() if line.strip().startswith((OK, BAD))]


def test_the_demo_tells_todays_story_and_every_invariant_holds(emulators, azurite):
    out, progress = io.StringIO(), io.StringIO()

    code = run(out, progress, emulators=emulators, storage_connection=azurite.connection_string)

    text = out.getvalue()
    assert code == 0, text
    assert len(marks(text)) == 7 and set(marks(text)) == {OK}
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "All invariants hold", "Finished in"):
        assert step in text
    for tenant in ("contoso", "fabrikam", "northwind", "northwind-v3"):
        assert tenant in text
    assert "still refresh" in text and "retired" in text
    assert "rotate_from_queue" in progress.getvalue()


def test_the_demo_exits_non_zero_when_an_invariant_fails(emulators, azurite):
    # Nylas refuses the rotated secret of the v3 tenants (provisioning creates their credentials;
    # rotation updates them): the rotations roll back, so their keys never change.
    emulators.world.faults.inject("nylas.v3_patch_credential", status=400, times=10)
    out = io.StringIO()

    code = run(out, io.StringIO(), emulators=emulators, storage_connection=azurite.connection_string)

    text = out.getvalue()
    assert code == 1
    assert BAD in marks(text) and "SOME INVARIANTS FAILED" in text
    assert any(line.strip().startswith(f"{BAD} contoso") for line in text.splitlines())
