"""The joined headers tree root compiles against lives only where root alone writes."""

import os

import pytest

from ipft_tui.kernel import headers
from ipft_tui.kernel.headers import HeadersError, find_headers, unsafe_reason

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="checks root's cache (run as root)")

NOBODY = 65534


@pytest.fixture
def debian_pair(tmp_path):
    """A /usr/src with an arch headers tree that includes its -common tree."""
    src = tmp_path / "src"
    common = src / "linux-headers-9.9.9-common"
    arch = src / "linux-headers-9.9.9-amd64"
    (common / "include/linux").mkdir(parents=True)
    (common / "include/linux/skbuff.h").write_text("/* real */\n")
    (arch / "include/generated").mkdir(parents=True)
    (arch / "include/generated/autoconf.h").write_text("\n")
    (arch / "Makefile").write_text(f"include {common}/Makefile\n")
    return src


@pytest.fixture
def root_cache(tmp_path, monkeypatch):
    cache = tmp_path / "var-cache-ipft-tui"
    monkeypatch.setattr(headers, "ROOT_CACHE", str(cache))
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    return cache


def find(src, tmp_path):
    return find_headers(release="0-none", src_dir=str(src), modules_dir=str(tmp_path / "modules"))


def test_root_ignores_a_cache_planted_through_xdg_cache_home(debian_pair, root_cache, tmp_path,
                                                            monkeypatch):
    planted = tmp_path / "user-cache"
    tree = planted / "ipft-tui/headers/linux-headers-9.9.9-amd64"
    (tree / "include/linux").mkdir(parents=True)
    (tree / "include/linux/skbuff.h").write_text("/* planted */\n")
    (tree / ".ipft-tui-complete").write_text("")
    for path in [planted, *planted.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    monkeypatch.setenv("XDG_CACHE_HOME", str(planted))
    found = find(debian_pair, tmp_path)
    assert found.path == str(root_cache / "headers/linux-headers-9.9.9-amd64")
    assert (root_cache / "headers/linux-headers-9.9.9-amd64/include/linux/skbuff.h").read_text() \
        == "/* real */\n"
    assert "not used" not in found.how


def test_a_cache_that_fails_the_checks_is_not_written_through(debian_pair, root_cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root_cache.symlink_to(elsewhere)  # would make root fill any directory
    found = find(debian_pair, tmp_path)
    assert list(elsewhere.iterdir()) == []
    assert f"{root_cache} is a symbolic link" in found.how
    assert not found.path.startswith(str(root_cache))
    assert os.stat(os.path.dirname(found.path)).st_mode & 0o077 == 0
    assert os.path.exists(os.path.join(found.path, "include/linux/skbuff.h"))


def test_a_symlink_inside_the_cache_is_replaced_not_followed(debian_pair, root_cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "include/linux").mkdir(parents=True)
    (elsewhere / ".ipft-tui-complete").write_text("")
    (root_cache / "headers").mkdir(parents=True, mode=0o700)
    (root_cache / "headers/linux-headers-9.9.9-amd64").symlink_to(elsewhere)
    found = find(debian_pair, tmp_path)
    assert not os.path.islink(found.path)
    assert sorted(p.name for p in elsewhere.iterdir()) == [".ipft-tui-complete", "include"]


@pytest.mark.parametrize("case", ["other_owner", "group_writable", "world_writable", "symlink",
                                  "fine", "sticky_root"])
def test_unsafe_reason(tmp_path, case):
    d = tmp_path / "d"
    d.mkdir(mode=0o700)
    if case == "other_owner":
        os.chown(d, NOBODY, NOBODY)
    elif case == "group_writable":
        os.chmod(d, 0o770)
    elif case == "world_writable":
        os.chmod(d, 0o777)
    elif case == "sticky_root":
        os.chmod(d, 0o1777)
    elif case == "symlink":
        d.rmdir()
        (tmp_path / "real").mkdir()
        d.symlink_to(tmp_path / "real")
    reason = unsafe_reason(str(d / "sub"), create=True)
    expected = {"other_owner": f"{d} belongs to uid {NOBODY}",
                "group_writable": f"{d} is writable by others",
                "world_writable": f"{d} is writable by others",
                "symlink": f"{d} is a symbolic link",
                "fine": None, "sticky_root": None}[case]
    assert reason == expected


def test_bcc_kernel_source_others_can_change_is_refused(tmp_path, monkeypatch):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(theirs))
    with pytest.raises(HeadersError, match=f"not compiling headers others can change "
                                           f"\\({theirs} belongs to uid {NOBODY}\\)"):
        find_headers()
