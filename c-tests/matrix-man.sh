# The errnos of the code, the tests and the man pages agree, both ways:
# - every errno the bad-input matrix expects from a function is one its man page lists
#   under ERRORS;
# - every errno a man page lists under ERRORS is produced by some test: the matrix, or a
#   CHECK_ERR of any C test (run-tests collects those in $LIBKVM_TEST_ERRNOS, and runs this
#   script after the C tests), unless c-tests/errnos-unproduced says why no test here can
#   produce it. A family page (.so redirects) counts what any of its functions produced.
# ENOTSUP and EOPNOTSUPP are one number on Linux (as are EAGAIN/EWOULDBLOCK): compared
# as numbers, through their canonical names.
set -eu
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not usable here"; exit 77; }
canon() { sed -e 's/\bENOTSUP\b/EOPNOTSUPP/g' -e 's/\bEWOULDBLOCK\b/EAGAIN/g' -e 's/\bEDEADLOCK\b/EDEADLK/g'; }
matrix=$(MATRIX_ERRNOS=1 build/c-tests/bad_input_matrix | awk '$1 == "errno" { print $2, $3 }' | canon)
[ -n "$matrix" ] || { echo "the matrix listed no errno"; exit 1; }
page() { # the man page of function $1, following a .so redirect
  local f=man/man3/$1.3
  [ -f "$f" ] || return 1
  local so; so=$(sed -n 's/^\.so *//p' "$f")
  if [ -n "$so" ]; then echo "man/$so"; else echo "$f"; fi
}
listed() { # the errnos page $1 lists under ERRORS: every errno name on a .B or .BR line
  # (a tag may name several: ".B EPERM, EINVAL", ".BR EACCES \", \" ENOENT")
  sed -n '/^\.SH ERRORS/,/^\.SH /p' "$1" | sed -n '/^\.BR\{0,1\} /p' |
    grep -oE '\bE[A-Z0-9]{2,}\b' | canon | sort -u
}
bad=0 n=0
while read -r fn err; do
  n=$((n + 1))
  p=$(page "$fn") || { echo "$fn: no man page"; bad=1; continue; }
  if ! listed "$p" | grep -qx -- "$err"; then
    echo "$fn: the matrix expects $err, which $p does not list under ERRORS"
    bad=1
  fi
done <<< "$matrix"
[ $bad -eq 0 ] && echo "$n (function, errno) pairs of the matrix, each listed in the function's man page"

# The other way: page -> test.
produced=${LIBKVM_TEST_ERRNOS:-}
if [ -z "$produced" ] || [ ! -s "$produced" ]; then
  echo "no errnos recorded from the C tests (\$LIBKVM_TEST_ERRNOS): run this through make check"
  exit 1
fi
declare -A seen
while read -r fn err; do
  [ -n "$fn" ] || continue
  p=$(page "$fn") || continue
  seen["$p $err"]=1
done < <( { echo "$matrix"; canon < "$produced"; } | sort -u)
declare -A excused hostdep
while read -r fn err why; do
  case "$fn" in ''|'#'*) continue ;; esac
  [ -n "$why" ] || { echo "c-tests/errnos-unproduced: '$fn $err' gives no reason"; bad=1; }
  k="$fn $(echo "$err" | canon)"
  excused["$k"]=1
  # "host: ..." reasons: only some hosts can produce the pair (a capability, a kind of
  # hypervisor); a host that does produce it is noted, not failed.
  case "$why" in host:*) hostdep["$k"]=1 ;; esac
done < c-tests/errnos-unproduced
unproduced=0 pages=0 total=0
for f in man/man3/*.3; do
  grep -q '^\.so' "$f" && continue
  pages=$((pages + 1))
  fn=$(basename "$f" .3)
  for err in $(listed "$f"); do
    total=$((total + 1))
    [ -n "${seen["$f $err"]:-}" ] && continue
    [ -n "${excused["$fn $err"]:-}${excused["* $err"]:-}" ] && continue
    echo "$f lists $err, which no test produces (and c-tests/errnos-unproduced does not excuse)"
    unproduced=$((unproduced + 1)); bad=1
  done
done
for k in "${!excused[@]}"; do
  set -- $k
  [ "$1" = "*" ] && continue
  f=man/man3/$1.3
  if [ -n "${seen["$f $2"]:-}" ]; then
    if [ -n "${hostdep["$k"]:-}" ]; then
      echo "note: '$k', excused as host-dependent in c-tests/errnos-unproduced, is produced on this host"
    else
      echo "c-tests/errnos-unproduced excuses '$k', which a test now produces: remove the line"; bad=1
    fi
  fi
done
[ $bad -eq 0 ] && echo "$total (page, errno) pairs over $pages pages, each produced by a test or excused with a reason"
exit $bad
