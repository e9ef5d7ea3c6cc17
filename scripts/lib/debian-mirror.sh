# Sourced by skopeo-matrix.sh and real-images.sh: the Debian mirror this
# machine already uses, never hard-coded in the repo. mirror() prints the URI
# of the deb822 stanza or one-line entry for the host's own codename (which
# excludes -security / -updates entries), or nothing.
mirror() {
  local codename
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  shopt -s nullglob
  local files=(/etc/apt/sources.list.d/*.sources) lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  shopt -u nullglob
  { ((${#files[@]})) && awk -v RS= -v c="$codename" '
      /(^|\n)Enabled: *no/ { next }
      match($0, /(^|\n)Suites:[^\n]*/) && (" " substr($0, RSTART, RLENGTH) " ") ~ (" " c " ") &&
      match($0, /(^|\n)URIs: *[^ \n]+/) { u = substr($0, RSTART, RLENGTH); sub(/.*URIs: */, "", u); print u; exit }
    ' "${files[@]}"
    for f in "${lists[@]}"; do [[ ! -f $f ]] || sed -E 's/\[[^]]*\]//' "$f"; done |
      awk -v c="$codename" '$1 == "deb" && $3 == c { print $2; exit }'
  } | awk 'NR == 1'
}
