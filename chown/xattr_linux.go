package chown

import (
	"bytes"
	"errors"
	"io/fs"
	"runtime"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNoXattr is the error (ENODATA) that [GetXattr] and [FGetXattr] wrap when
// the file has no attribute of that name; test for it with errors.Is.
var ErrNoXattr error = unix.ENODATA

// The walker lists the xattrs of every inode and almost none have any, so the
// list calls below keep the path, the name and the first buffer on the stack
// and allocate only when there is something to return. golang.org/x/sys/unix
// would allocate a C copy of the path on every call.

const (
	pathMax      = 4096 // PATH_MAX, including the terminating NUL
	xattrNameMax = 256  // XATTR_NAME_MAX plus the NUL
	listBufSize  = 256  // enough for an ACL pair and a capability
	valueBufSize = 256  // an ACL of 31 entries, any capability
	maxRetries   = 8    // the xattrs may grow between the size probe and the read
)

// op selects how a syscall names its file.
type op int

const (
	byLPath op = iota // path, the last component not followed (l*xattr)
	byPath            // path, followed (*xattr); used for /proc/self/fd/N
	byFd              // an open fd (f*xattr)
)

// cstr copies s with a terminating NUL into buf and returns a pointer to it,
// or allocates when s does not fit.
func cstr(buf []byte, s string) (unsafe.Pointer, error) {
	if len(s) < len(buf) {
		if bytes.IndexByte(unsafe.Slice(unsafe.StringData(s), len(s)), 0) >= 0 {
			return nil, unix.EINVAL
		}
		copy(buf, s)
		buf[len(s)] = 0
		return unsafe.Pointer(&buf[0]), nil
	}
	p, err := unix.BytePtrFromString(s)
	return unsafe.Pointer(p), err
}

// bufPtr points at b's first byte, or is nil for an empty b. Callers keep it
// in an unsafe.Pointer and convert it to uintptr only in the syscall's
// argument list, so the buffer stays alive and in place during the call.
func bufPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func listxattr(o op, fd int, path unsafe.Pointer, dest []byte) (int, error) {
	var r uintptr
	var e unix.Errno
	d := bufPtr(dest)
	switch o {
	case byFd:
		r, _, e = unix.Syscall(unix.SYS_FLISTXATTR, uintptr(fd), uintptr(d), uintptr(len(dest)))
	case byPath:
		r, _, e = unix.Syscall(unix.SYS_LISTXATTR, uintptr(path), uintptr(d), uintptr(len(dest)))
	default:
		r, _, e = unix.Syscall(unix.SYS_LLISTXATTR, uintptr(path), uintptr(d), uintptr(len(dest)))
	}
	return int(r), errnoErr(e)
}

func getxattr(o op, fd int, path, name unsafe.Pointer, dest []byte) (int, error) {
	var r uintptr
	var e unix.Errno
	d := bufPtr(dest)
	switch o {
	case byFd:
		r, _, e = unix.Syscall6(unix.SYS_FGETXATTR, uintptr(fd), uintptr(name), uintptr(d), uintptr(len(dest)), 0, 0)
	case byPath:
		r, _, e = unix.Syscall6(unix.SYS_GETXATTR, uintptr(path), uintptr(name), uintptr(d), uintptr(len(dest)), 0, 0)
	default:
		r, _, e = unix.Syscall6(unix.SYS_LGETXATTR, uintptr(path), uintptr(name), uintptr(d), uintptr(len(dest)), 0, 0)
	}
	return int(r), errnoErr(e)
}

func setxattr(o op, fd int, path, name unsafe.Pointer, v []byte) error {
	var e unix.Errno
	d := bufPtr(v)
	switch o {
	case byFd:
		_, _, e = unix.Syscall6(unix.SYS_FSETXATTR, uintptr(fd), uintptr(name), uintptr(d), uintptr(len(v)), 0, 0)
	case byPath:
		_, _, e = unix.Syscall6(unix.SYS_SETXATTR, uintptr(path), uintptr(name), uintptr(d), uintptr(len(v)), 0, 0)
	default:
		_, _, e = unix.Syscall6(unix.SYS_LSETXATTR, uintptr(path), uintptr(name), uintptr(d), uintptr(len(v)), 0, 0)
	}
	return errnoErr(e)
}

// ListXattrs returns the xattr names of path without following a final
// symlink; nil when it has none or its filesystem does not support xattrs.
func ListXattrs(path string) ([]string, error) {
	var pbuf [pathMax]byte
	p, err := cstr(pbuf[:], path)
	if err != nil {
		return nil, &fs.PathError{Op: "llistxattr", Path: path, Err: err}
	}
	names, err := listNames(byLPath, -1, p)
	if err != nil {
		return nil, &fs.PathError{Op: "llistxattr", Path: path, Err: err}
	}
	return names, nil
}

// FListXattrs returns the xattr names of the file open as fd; nil when it has
// none or its filesystem does not support xattrs. An O_PATH fd (which
// flistxattr refuses) is read through /proc/self/fd/N, which names the file
// itself even when it is a symlink.
func FListXattrs(fd int) ([]string, error) {
	names, err := listNames(byFd, fd, nil)
	if errors.Is(err, unix.EBADF) && fd >= 0 {
		var pbuf [64]byte
		names, err = listNames(byPath, -1, procFdPath(pbuf[:], fd))
	}
	if err != nil {
		return nil, &fs.PathError{Op: "flistxattr", Path: "fd " + strconv.Itoa(fd), Err: err}
	}
	return names, nil
}

func listNames(o op, fd int, p unsafe.Pointer) ([]string, error) {
	var buf [listBufSize]byte
	n, err := listxattr(o, fd, p, buf[:])
	if err == nil {
		return splitNames(buf[:n]), nil
	}
	for range maxRetries {
		switch err {
		case unix.ENOTSUP:
			return nil, nil
		case unix.ERANGE:
		default:
			return nil, err
		}
		if n, err = listxattr(o, fd, p, nil); err != nil {
			continue
		}
		big := make([]byte, n)
		if n, err = listxattr(o, fd, p, big); err == nil {
			return splitNames(big[:n]), nil
		}
	}
	return nil, err
}

// splitNames splits the NUL-terminated names the kernel returns.
func splitNames(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		b = b[min(i+1, len(b)):]
	}
	return out
}

// procFdPath writes "/proc/self/fd/N\x00" into buf.
func procFdPath(buf []byte, fd int) unsafe.Pointer {
	b := append(buf[:0], "/proc/self/fd/"...)
	b = strconv.AppendInt(b, int64(fd), 10)
	b = append(b, 0)
	return unsafe.Pointer(&b[0])
}

// GetXattr returns the value of the xattr name of path without following a
// final symlink. A missing attribute is an error wrapping [ErrNoXattr].
func GetXattr(path, name string) ([]byte, error) {
	var pbuf [pathMax]byte
	var nbuf [xattrNameMax]byte
	p, err := cstr(pbuf[:], path)
	if err == nil {
		var n unsafe.Pointer
		if n, err = cstr(nbuf[:], name); err == nil {
			var v []byte
			if v, err = getValue(byLPath, -1, p, n); err == nil {
				return v, nil
			}
		}
	}
	return nil, &fs.PathError{Op: "lgetxattr " + name, Path: path, Err: err}
}

// FGetXattr is [GetXattr] on the file open as fd, also for O_PATH fds (see
// [FListXattrs]).
func FGetXattr(fd int, name string) ([]byte, error) {
	var nbuf [xattrNameMax]byte
	n, err := cstr(nbuf[:], name)
	if err == nil {
		var v []byte
		v, err = getValue(byFd, fd, nil, n)
		if errors.Is(err, unix.EBADF) && fd >= 0 {
			var pbuf [64]byte
			v, err = getValue(byPath, -1, procFdPath(pbuf[:], fd), n)
		}
		if err == nil {
			return v, nil
		}
	}
	return nil, &fs.PathError{Op: "fgetxattr " + name, Path: "fd " + strconv.Itoa(fd), Err: err}
}

func getValue(o op, fd int, p, name unsafe.Pointer) ([]byte, error) {
	var buf [valueBufSize]byte
	n, err := getxattr(o, fd, p, name, buf[:])
	if err == nil {
		return append([]byte(nil), buf[:n]...), nil
	}
	for range maxRetries {
		if err != unix.ERANGE {
			return nil, err
		}
		if n, err = getxattr(o, fd, p, name, nil); err != nil {
			continue
		}
		big := make([]byte, n)
		if n, err = getxattr(o, fd, p, name, big); err == nil {
			return big[:n], nil
		}
	}
	return nil, err
}

// SetXattr sets the xattr name of path to v without following a final
// symlink, creating or replacing it.
func SetXattr(path, name string, v []byte) error {
	var pbuf [pathMax]byte
	var nbuf [xattrNameMax]byte
	p, err := cstr(pbuf[:], path)
	if err == nil {
		var n unsafe.Pointer
		if n, err = cstr(nbuf[:], name); err == nil {
			if err = setxattr(byLPath, -1, p, n, v); err == nil {
				return nil
			}
		}
	}
	return &fs.PathError{Op: "lsetxattr " + name, Path: path, Err: err}
}

// FSetXattr is [SetXattr] on the file open as fd, also for O_PATH fds (see
// [FListXattrs]).
func FSetXattr(fd int, name string, v []byte) error {
	var nbuf [xattrNameMax]byte
	n, err := cstr(nbuf[:], name)
	if err == nil {
		err = setxattr(byFd, fd, nil, n, v)
		if errors.Is(err, unix.EBADF) && fd >= 0 {
			var pbuf [64]byte
			err = setxattr(byPath, -1, procFdPath(pbuf[:], fd), n, v)
		}
		if err == nil {
			return nil
		}
	}
	return &fs.PathError{Op: "fsetxattr " + name, Path: "fd " + strconv.Itoa(fd), Err: err}
}

// The *xattrat syscalls (Linux 6.13+) name a file by a directory fd and a
// name in it, without the /proc/self/fd path walk that costs the l*xattr
// calls of the walker a third of its CPU. noXattrAt is set on the first
// ENOSYS; callers then fall back to the l*xattr calls on a /proc path, which
// resolve the same file the same way (the last component never followed).
var noXattrAt atomic.Bool

// xattrArgs is the kernel's struct xattr_args.
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// listXattrsAt returns the xattr names of name in the directory open as
// dirfd, never following a symlink; nil when it has none or its filesystem
// does not support xattrs. ok is false when the kernel lacks listxattrat.
func listXattrsAt(dirfd int, name string) (names []string, ok bool, err error) {
	if noXattrAt.Load() {
		return nil, false, nil
	}
	var nbuf [nameBuf]byte
	p, err := cstr(nbuf[:], name)
	if err != nil {
		return nil, true, err
	}
	list := func(dest []byte) (int, error) {
		d := bufPtr(dest)
		r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(p), unix.AT_SYMLINK_NOFOLLOW,
			uintptr(d), uintptr(len(dest)), 0)
		return int(r), errnoErr(e)
	}
	var buf [listBufSize]byte
	n, err := list(buf[:])
	if err == nil {
		return splitNames(buf[:n]), true, nil
	}
	if err == unix.ENOSYS {
		noXattrAt.Store(true)
		return nil, false, nil
	}
	for range maxRetries {
		switch err {
		case unix.ENOTSUP:
			return nil, true, nil
		case unix.ERANGE:
		default:
			return nil, true, err
		}
		if n, err = list(nil); err != nil {
			continue
		}
		big := make([]byte, n)
		if n, err = list(big); err == nil {
			return splitNames(big[:n]), true, nil
		}
	}
	return nil, true, err
}

// getXattrAt returns the value of the xattr x of name in the directory open
// as dirfd, never following a symlink. ok is false when the kernel lacks
// getxattrat.
func getXattrAt(dirfd int, name, x string) (v []byte, ok bool, err error) {
	if noXattrAt.Load() {
		return nil, false, nil
	}
	var pbuf [nameBuf]byte
	var xbuf [xattrNameMax]byte
	p, err := cstr(pbuf[:], name)
	if err != nil {
		return nil, true, err
	}
	xp, err := cstr(xbuf[:], x)
	if err != nil {
		return nil, true, err
	}
	get := func(dest []byte) (int, error) {
		args := xattrArgs{value: uint64(uintptr(bufPtr(dest))), size: uint32(len(dest))}
		r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(p), unix.AT_SYMLINK_NOFOLLOW,
			uintptr(xp), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
		runtime.KeepAlive(dest)
		return int(r), errnoErr(e)
	}
	// The kernel reads the buffer's address from args, out of the compiler's
	// sight: the buffers are on the heap (returned), which never moves.
	buf := make([]byte, valueBufSize)
	n, err := get(buf)
	if err == nil {
		return buf[:n:n], true, nil
	}
	if err == unix.ENOSYS {
		noXattrAt.Store(true)
		return nil, false, nil
	}
	for range maxRetries {
		if err != unix.ERANGE {
			return nil, true, err
		}
		if n, err = get(nil); err != nil {
			continue
		}
		big := make([]byte, n)
		if n, err = get(big); err == nil {
			return big[:n], true, nil
		}
	}
	return nil, true, err
}
