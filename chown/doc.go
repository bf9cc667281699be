// Package chown maps file ownership between id namespaces and applies it to
// trees safely: it computes the rootless id map of a user, audits a tree for
// the owner changes a migration implies, shifts a tree in place (journaled,
// resumable and reversible) and copies a tree while shifting it.
//
// It walks by file descriptor and never follows a symlink, never opens a FIFO
// or device node, stays on one filesystem and shifts each inode once. It knows
// nothing of Docker: callers hand it paths and an [IDMap].
package chown
