package chown

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The walker makes a few syscalls per entry; golang.org/x/sys/unix
// allocates a C copy of the name on each. These keep names up to NAME_MAX
// on the stack, as the xattr calls do.

const nameBuf = 256 // NAME_MAX plus the NUL: any name getdents returns

// statx is unix.Statx without the allocation.
func statx(dirfd int, name string, flags, mask int, st *unix.Statx_t) error {
	var buf [nameBuf]byte
	p, err := cstr(buf[:], name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_STATX, uintptr(dirfd), uintptr(p), uintptr(flags), uintptr(mask),
		uintptr(unsafe.Pointer(st)), 0)
	return errnoErr(e)
}

// fchownat is unix.Fchownat without the allocation.
func fchownat(dirfd int, name string, uid, gid uint32, flags int) error {
	var buf [nameBuf]byte
	p, err := cstr(buf[:], name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_FCHOWNAT, uintptr(dirfd), uintptr(p), uintptr(uid), uintptr(gid),
		uintptr(flags), 0)
	return errnoErr(e)
}
