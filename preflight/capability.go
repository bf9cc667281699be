package preflight

import (
	"encoding/binary"
	"fmt"
)

// FileCaps is what the checks need from a security.capability xattr: its
// revision, whether the capabilities are effective, the permitted bits of
// capabilities 0-31 and, for revision 3, the namespace root they apply to.
type FileCaps struct {
	Version   int
	Effective bool
	Permitted uint32
	RootID    uint32
}

// DecodeFileCaps decodes a security.capability xattr value (linux
// uapi/linux/capability.h: le32 magic_etc, then le32 permitted and
// inheritable pairs, then for revision 3 le32 rootid). Package chown has the
// full codec; this reads only the permitted low word, so that preflight does
// not depend on chown.
func DecodeFileCaps(b []byte) (FileCaps, error) {
	if len(b) < 4 {
		return FileCaps{}, fmt.Errorf("security.capability of %d bytes", len(b))
	}
	magic := binary.LittleEndian.Uint32(b)
	var c FileCaps
	var size int
	switch magic & 0xFF000000 {
	case 0x01000000:
		c.Version, size = 1, 12
	case 0x02000000:
		c.Version, size = 2, 20
	case 0x03000000:
		c.Version, size = 3, 24
	default:
		return FileCaps{}, fmt.Errorf("security.capability revision %#x", magic&0xFF000000)
	}
	if len(b) != size {
		return FileCaps{}, fmt.Errorf("security.capability v%d of %d bytes, want %d", c.Version, len(b), size)
	}
	c.Effective = magic&1 != 0
	c.Permitted = binary.LittleEndian.Uint32(b[4:])
	if c.Version == 3 {
		c.RootID = binary.LittleEndian.Uint32(b[20:])
	}
	return c, nil
}
