#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sourced by tools/*.sh: defines debian_archive. Run directly, prints its result.
# Shared by build-deps.sh (source packages) and mkroot.sh (debootstrap).

# Print "URI<TAB>SIGNED-BY" of the first Debian archive entry in the machine's
# own apt configuration: URI path ending in /debian (so not debian-security,
# not third-party repositories) and a Debian suite. No mirror is hard-coded.
debian_archive() {
  local suites='^(jessie|stretch|buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)(-updates|-backports|-proposed-updates)?$'
  {
    # One-line format: deb [opt=val ...] URI SUITE COMPONENT...
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      sed -e 's/#.*//' "$f" | awk '
        $1 == "deb" || $1 == "deb-src" {
          i = 2; sb = ""
          if ($2 ~ /^\[/) {
            for (; i <= NF; i++) {
              t = $i; gsub(/[\[\]]/, "", t)
              if (t ~ /^signed-by=/) { sub(/^signed-by=/, "", t); sb = t }
              if ($i ~ /\]$/) { i++; break }
            }
          }
          print $i "\t" $(i + 1) "\t" sb
        }'
    done
    # deb822 format: paragraphs of "Field: value", continuation lines indented.
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      awk '
        function flush(   n, m, u, s, U, S) {
          if (types ~ /(^|[ \t])deb(-src)?([ \t]|$)/ && tolower(enabled) != "no") {
            n = split(uris, U); m = split(suites, S)
            for (u = 1; u <= n; u++) for (s = 1; s <= m; s++) print U[u] "\t" S[s] "\t" sb
          }
          types = uris = suites = sb = enabled = ""
        }
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { next }   # continuation (e.g. an inline key): ignored
        {
          k = tolower($0); sub(/:.*/, "", k); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
          if (k == "types") types = v; else if (k == "uris") uris = v
          else if (k == "suites") suites = v; else if (k == "enabled") enabled = v
          else if (k == "signed-by" && v ~ /^\//) sb = v
        }
        END { flush() }' "$f"
    done
  } | awk -F'\t' -v re="$suites" '{ u = $1; sub(/\/+$/, "", u) }
        u ~ /\/debian$/ && $2 ~ re { print u "\t" $3; exit }'
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  debian_archive
fi
