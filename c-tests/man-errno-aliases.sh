# No man page lists two names of one errno number (ENOTSUP and EOPNOTSUPP, EAGAIN and
# EWOULDBLOCK, EDEADLK and EDEADLOCK are the same on Linux) as separate ERRORS entries:
# a program cannot tell them apart, so the page must say which case it is in one entry.
set -eu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Every errno name of <errno.h> with its number, from the C preprocessor.
${CC:-cc} -E -dM -include errno.h - < /dev/null | awk '$1 == "#define" && $2 ~ /^E[A-Z0-9]+$/ { print $2, $3 }' > "$tmp/defs"
resolve() { # name -> number, following aliases (#define EWOULDBLOCK EAGAIN)
  local v=$1 n=0
  while [[ ! $v =~ ^[0-9]+$ ]] && [ $n -lt 5 ]; do
    v=$(awk -v k="$v" '$1 == k { print $2 }' "$tmp/defs"); n=$((n + 1))
    [ -n "$v" ] || return 1
  done
  echo "$v"
}
bad=0 pages=0
for p in man/man3/*.3; do
  head -n 1 "$p" | grep -q '^\.so ' && continue
  pages=$((pages + 1))
  entry=0
  : > "$tmp/seen"
  # One line per ERRORS entry: its tag (the line after .TP), with the errno names.
  while IFS= read -r tag; do
    entry=$((entry + 1))
    for name in $(grep -oE '\bE[A-Z0-9]{2,}\b' <<< "$tag" | sort -u); do
      num=$(resolve "$name") || continue
      echo "$num $entry $name" >> "$tmp/seen"
    done
  done < <(awk '/^\.SH ERRORS/ { on = 1; next } /^\.SH / { on = 0 } on && tp { print; tp = 0; next } on && /^\.TP/ { tp = 1 }' "$p")
  # Two entries naming the same number by different names (one name in several entries,
  # one per function of the page, is fine).
  dup=$(sort -n "$tmp/seen" | awk '{ if ($1 == n && $2 != e && $3 != name) print name " and " $3 " (errno " $1 ")"; n = $1; e = $2; name = $3 }')
  if [ -n "$dup" ]; then
    echo "$p: separate ERRORS entries for the same errno: $dup"
    bad=1
  fi
done
[ $bad -eq 0 ] && echo "$pages man pages: no errno number has two ERRORS entries"
exit $bad
