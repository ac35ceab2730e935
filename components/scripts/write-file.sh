# Writes the file content given on stdin to DEST atomically with MODE.
# host-effect: file if changed(stdin) or changed(DEST) or changed(MODE); nothing
# In: DEST, MODE. Used for config.yaml and the token drop-in.
write_atomically "$DEST" "$MODE"
