# Prints a file RKE2 wrote (kubeconfig, token). In: SOURCE.
[ -s "$SOURCE" ] || fail "$SOURCE is missing or empty"
cat "$SOURCE"
