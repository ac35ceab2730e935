# Writes the file content given on stdin to DEST atomically with MODE.
# In: DEST, MODE. Used for config.yaml and the token drop-in.
write_atomically "$DEST" "$MODE"
