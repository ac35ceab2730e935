# Prints a file RKE2 wrote (kubeconfig, token). In: SOURCE.
# host-effect: nothing
# The content is secret, and a failed step's error carries the command's whole output
# (pulumi-command remote/commandOutputs.go run): read all of it first, check it, and print
# it as the very last action, so that no failure path can print any part of it.
[ -s "$SOURCE" ] || fail "$SOURCE is missing or empty"
content=$(cat -- "$SOURCE" && printf x) || fail "cannot read $SOURCE"
content=${content%x}  # the x keeps trailing newlines through the command substitution
[ -n "$content" ] || fail "$SOURCE is empty"
printf '%s' "$content"
