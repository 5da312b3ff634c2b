# Every errno the bad-input matrix expects from a function is one its man page lists
# under ERRORS: the code, the tests and the documentation say the same.
set -eu
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm is not usable here"; exit 77; }
pairs=$(MATRIX_ERRNOS=1 build/c-tests/bad_input_matrix | awk '$1 == "errno" { print $2, $3 }')
[ -n "$pairs" ] || { echo "the matrix listed no errno"; exit 1; }
page() { # the man page of function $1, following a .so redirect
  local f=man/man3/$1.3
  [ -f "$f" ] || return 1
  local so; so=$(sed -n 's/^\.so *//p' "$f")
  if [ -n "$so" ]; then echo "man/$so"; else echo "$f"; fi
}
bad=0 n=0
while read -r fn err; do
  n=$((n + 1))
  p=$(page "$fn") || { echo "$fn: no man page"; bad=1; continue; }
  if ! sed -n '/^\.SH ERRORS/,/^\.SH /p' "$p" | grep -qw -- "$err"; then
    echo "$fn: the matrix expects $err, which $p does not list under ERRORS"
    bad=1
  fi
done <<< "$pairs"
[ $bad -eq 0 ] && echo "$n (function, errno) pairs of the matrix, each listed in the function's man page"
exit $bad
