# The escape-hatch pages name as "no libkvm function" only requests that have none: every
# KVM_* request in the first paragraph of DESCRIPTION and in EXAMPLES of kvm_vm_ioctl(3)
# and kvm_system_ioctl(3) is a "hatch" row of docs/qemu-mapping.md (the table of every
# request QEMU issues with the libkvm call for it), not one libkvm has a call for. Names
# the table does not list (attributes such as KVM_X86_XCOMP_GUEST_SUPP) are not judged.
set -eu
bad=0 n=0
for page in man/man3/kvm_vm_ioctl.3 man/man3/kvm_system_ioctl.3; do
  # First DESCRIPTION paragraph (up to the first .PP) and the EXAMPLES section.
  names=$(awk '/^\.SH DESCRIPTION/ { d = 1; next } d && /^\.(PP|SH)/ { d = 0 }
               /^\.SH EXAMPLES/ { e = 1; next } e && /^\.SH / { e = 0 } d || e' "$page" \
          | grep -oE '\bKVM_[A-Z0-9_]+' | grep -v '^KVM_CAP_' | sort -u)
  for req in $names; do
    row=$(grep -E "^\| ${req}( \(| \|)" docs/qemu-mapping.md | head -n 1 || true)
    # Not a request QEMU issues (an attribute name such as KVM_X86_XCOMP_GUEST_SUPP).
    [ -n "$row" ] || continue
    n=$((n + 1))
    role=$(awk -F'|' '{ gsub(/ /, "", $4); print $4 }' <<< "$row")
    if [ "$role" != hatch ]; then
      echo "$page names $req as a request without a libkvm function, but docs/qemu-mapping.md gives it one: $(awk -F'|' '{ print $5 }' <<< "$row" | cut -c1-80)"
      bad=1
    fi
  done
done
[ "$n" -gt 0 ] || { echo "the pages name no request"; exit 1; }
[ $bad -eq 0 ] && echo "$n requests the hatch pages name as having no libkvm function: each a hatch row of docs/qemu-mapping.md"
exit $bad
