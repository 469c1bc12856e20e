# Sourced by the scripts: one cargo target directory outside the clone, shared by every
# checkout, CI run and shell on this machine, so a warm build takes minutes, not half an hour.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/accel/target}"
ACCEL_PROFILE_DIR="$CARGO_TARGET_DIR/debug"
