package main

import (
	"errors"
	"syscall"
)

// stateHint says how to get past a state file or state directory that
// cannot be used: a directory problem (a file in its place, no permission,
// a read-only filesystem) needs another --state-dir; anything else is a
// damaged file to move aside. 'unroot status' is not suggested: it reads the
// same file.
func stateHint(err error) string {
	for _, errno := range []error{syscall.ENOTDIR, syscall.EISDIR, syscall.EACCES, syscall.EPERM, syscall.EROFS} {
		if errors.Is(err, errno) {
			return "--state-dir must name a directory root can write: pass another --state-dir or fix that path"
		}
	}
	return "move the damaged file aside; the daemons still show what runs where ('docker ps -a' against each)"
}

// lockError gives a failure to take the state lock a hint; another run
// holding it ([migrate.LockedError]) already has one.
func lockError(err error) error {
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		return err
	}
	return failErr(err, stateHint(err))
}
