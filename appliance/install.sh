#!/usr/bin/env bash
# Installs the Vigil live sensor: binary, example config and rules, NIC preparation script,
# systemd units, the vigil user and its directories. Idempotent: a second run reports
# "nothing changed". An operator's config or rules are never overwritten: when the shipped
# file differs it is installed beside them as FILE.new.
#
#   appliance/install.sh [--prefix DIR] [--root DIR] [--no-systemd] [--binary PATH]
#
# --prefix  where bin/vigil and lib/vigil/ go (default /usr/local); the units point there.
# --root    stage into DIR instead of / (packaging, images): no user is created, no
#           ownership set, no systemctl.
# --binary  the vigil executable to install (also VIGIL_BIN); default target/release/vigil,
#           built with cargo when missing.
set -euo pipefail

usage() {
    echo "usage: appliance/install.sh [--prefix DIR] [--root DIR] [--no-systemd] [--binary PATH]"
}
die() {
    echo "install: error: $*" >&2
    exit 1
}

prefix=/usr/local
root=/
systemd=1
binary=${VIGIL_BIN:-}
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix | --root | --binary)
            [ $# -ge 2 ] || { usage >&2; exit 2; }
            case "$1" in
                --prefix) prefix=$2 ;;
                --root) root=$2 ;;
                --binary) binary=$2 ;;
            esac
            shift 2
            ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --root=*) root=${1#*=}; shift ;;
        --binary=*) binary=${1#*=}; shift ;;
        --no-systemd) systemd=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

# The prefix is written into the units' ExecStart= lines with sed.
[[ "$prefix" == /* && "$prefix" != *[[:space:]\|\&\\]* ]] ||
    die "--prefix must be an absolute path without spaces, '|', '&' or '\\': $prefix"
prefix=${prefix%/}
[ -d "$root" ] || die "--root $root is not a directory"
root=$(cd "$root" && pwd -P)
live=0
if [ "$root" = / ]; then
    live=1
    root=""
    [ "$(id -u)" -eq 0 ] || die "installing into / needs root (or stage with --root DIR)"
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "$binary" ]; then
    binary=${CARGO_TARGET_DIR:-$here/target}/release/vigil
    if [ ! -x "$binary" ]; then
        command -v cargo >/dev/null || die "$binary is missing and cargo is not installed"
        echo "install: building $binary"
        (cd "$here" && cargo build --release --bin vigil)
    fi
fi
[ -x "$binary" ] || die "no executable vigil at $binary"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

changes=0
say() { echo "install: $*"; }
changed() {
    changes=$((changes + 1))
    say "$*"
}

# Copies SRC to DEST with MODE unless DEST already has that content and mode; replaced by
# rename, so a running binary is never written in place.
install_file() {
    local src=$1 dest=$2 mode=$3 what=installed tmp
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "$mode" ]; then
        return 0
    fi
    [ -e "$dest" ] && what=updated
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp "$dest.XXXXXX")
    cp "$src" "$tmp" && chmod "$mode" "$tmp" && mv -f "$tmp" "$dest" || { rm -f "$tmp"; die "cannot write $dest"; }
    changed "$what $dest"
}

# Operator-owned files: installed when absent, else left alone, the shipped one as DEST.new.
install_config() {
    local src=$1 dest=$2
    if [ ! -e "$dest" ] || cmp -s "$src" "$dest"; then
        install_file "$src" "$dest" 644
        return 0
    fi
    install_file "$src" "$dest.new" 644
    say "kept $dest (changed locally); the shipped version is $dest.new"
}

# DIR with MODE, and OWNER (user:group) when given.
ensure_dir() {
    local dir=$1 mode=$2 owner=${3:-}
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        chmod "$mode" "$dir"
        [ -z "$owner" ] || chown "$owner" "$dir"
        changed "created $dir"
        return 0
    fi
    if [ "$(stat -c %a "$dir")" != "$mode" ]; then
        chmod "$mode" "$dir"
        changed "set mode $mode on $dir"
    fi
    if [ -n "$owner" ] && [ "$(stat -c %U:%G "$dir")" != "$owner" ]; then
        chown "$owner" "$dir"
        changed "set owner $owner on $dir"
    fi
}

install_file "$binary" "$root$prefix/bin/vigil" 755
install_file "$here/appliance/nic-prepare.sh" "$root$prefix/lib/vigil/nic-prepare.sh" 755
install_config "$here/appliance/vigil.toml" "$root/etc/vigil/vigil.toml"
install_config "$here/samples/sample.rules" "$root/etc/vigil/rules/sample.rules"

units_changed=0
if [ "$systemd" -eq 1 ]; then
    before=$changes
    for unit in vigil.service vigil-nic@.service; do
        sed -e "s|/usr/local/bin/vigil|$prefix/bin/vigil|g" \
            -e "s|/usr/local/lib/vigil/|$prefix/lib/vigil/|g" \
            "$here/systemd/$unit" >"$scratch/$unit"
        install_file "$scratch/$unit" "$root/etc/systemd/system/$unit" 644
    done
    [ "$changes" -eq "$before" ] || units_changed=1
fi

owner=""
if [ "$live" -eq 1 ]; then
    if ! getent group vigil >/dev/null; then
        groupadd --system vigil
        changed "created group vigil"
    fi
    if ! getent passwd vigil >/dev/null; then
        useradd --system --gid vigil --home-dir /var/lib/vigil --no-create-home \
            --shell /usr/sbin/nologin --comment "Vigil network sensor" vigil
        changed "created user vigil"
    fi
    owner=vigil:vigil
else
    say "skipped the vigil user and group and directory owners (--root is not /); create" \
        "the user on the target system (systemd chowns /var/log/vigil and /var/lib/vigil to it)"
fi
# 0750 as the units' LogsDirectoryMode=/StateDirectoryMode=: eve.json shows customer traffic.
ensure_dir "$root/var/log/vigil" 750 "$owner"
ensure_dir "$root/var/lib/vigil" 750 "$owner"

if [ "$units_changed" -eq 1 ]; then
    if [ "$live" -eq 1 ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        say "systemctl daemon-reload"
    elif [ "$live" -eq 1 ]; then
        say "systemd is not running: skipped systemctl daemon-reload"
    fi
fi

if [ "$changes" -eq 0 ]; then
    say "nothing changed"
else
    say "$changes changed"
fi
if [ "$systemd" -eq 1 ] && [ "$live" -eq 1 ]; then
    say "start: systemctl enable --now vigil-nic@IFACE vigil (IFACE: the capture interface)"
fi
