# The ABI of build/libkvm.so (functions, symbol versions, parameter types, struct layouts)
# is the one recorded in abi/libkvm.abi: abi/abi.sh check (libabigail's abidiff). Any
# difference fails; abi/abi.sh says whether `make abi-baseline` may record it (changes in
# the unreleased version node) or it breaks a released node.
exec bash abi/abi.sh check
