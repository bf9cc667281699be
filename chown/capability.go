package chown

import (
	"encoding/binary"
	"fmt"
)

// Layout of the security.capability xattr (include/uapi/linux/capability.h).
const (
	capRevisionMask = 0xFF000000
	capRevision1    = 0x01000000
	capRevision2    = 0x02000000
	capRevision3    = 0x03000000
	capFlagEff      = 0x000001

	capSize1 = 4 + 8       // magic_etc, one permitted/inheritable pair
	capSize2 = 4 + 2*8     // magic_etc, two pairs
	capSize3 = 4 + 2*8 + 4 // v2 plus rootid
)

// Capability is a file's security.capability xattr: the le32 magic_etc word
// (revision in the top byte, bit 0x1 = effective), then le32 permitted and
// le32 inheritable words for capabilities 0-31 and (v2, v3) 32-63, then for
// v3 the le32 host uid of the root of the user namespace the capabilities
// apply in. v1 and v2 capabilities apply in every namespace, v3 only in the
// namespace whose root is RootID.
type Capability struct {
	Version     int // 1, 2 or 3
	Effective   bool
	Permitted   [2]uint32
	Inheritable [2]uint32
	RootID      uint32 // v3 only
}

// UnmarshalCapability decodes a security.capability xattr value. It is
// strict: the revision must be 1, 2 or 3, the size must be the revision's
// (12, 20 or 24 bytes) and no flag other than effective may be set; otherwise
// the error wraps [ErrMalformedXattr]. [Capability.Marshal] gives back b.
func UnmarshalCapability(b []byte) (Capability, error) {
	if len(b) < 4 {
		return Capability{}, fmt.Errorf("capability of %d bytes: %w", len(b), ErrMalformedXattr)
	}
	magic := binary.LittleEndian.Uint32(b)
	var c Capability
	var size int
	switch magic & capRevisionMask {
	case capRevision1:
		c.Version, size = 1, capSize1
	case capRevision2:
		c.Version, size = 2, capSize2
	case capRevision3:
		c.Version, size = 3, capSize3
	default:
		return Capability{}, fmt.Errorf("capability revision %#x: %w", magic&capRevisionMask, ErrMalformedXattr)
	}
	if len(b) != size {
		return Capability{}, fmt.Errorf("v%d capability of %d bytes, want %d: %w", c.Version, len(b), size, ErrMalformedXattr)
	}
	if flags := magic &^ capRevisionMask; flags&^capFlagEff != 0 {
		return Capability{}, fmt.Errorf("capability flags %#x: %w", flags, ErrMalformedXattr)
	}
	c.Effective = magic&capFlagEff != 0
	for i := 0; 4+8*i < size && i < 2; i++ {
		c.Permitted[i] = binary.LittleEndian.Uint32(b[4+8*i:])
		c.Inheritable[i] = binary.LittleEndian.Uint32(b[8+8*i:])
	}
	if c.Version == 3 {
		c.RootID = binary.LittleEndian.Uint32(b[capSize2:])
	}
	return c, nil
}

// Marshal encodes c in its Version's form: v3 (24 bytes, with RootID) when
// Version is 3, v1 (12 bytes, the low words only) when it is 1, and v2 (20
// bytes) otherwise.
func (c Capability) Marshal() []byte {
	var rev uint32
	var b []byte
	switch c.Version {
	case 3:
		rev, b = capRevision3, make([]byte, capSize3)
		binary.LittleEndian.PutUint32(b[capSize2:], c.RootID)
	case 1:
		rev, b = capRevision1, make([]byte, capSize1)
	default:
		rev, b = capRevision2, make([]byte, capSize2)
	}
	if c.Effective {
		rev |= capFlagEff
	}
	binary.LittleEndian.PutUint32(b, rev)
	n := 2
	if c.Version == 1 {
		n = 1
	}
	for i := range n {
		binary.LittleEndian.PutUint32(b[4+8*i:], c.Permitted[i])
		binary.LittleEndian.PutUint32(b[8+8*i:], c.Inheritable[i])
	}
	return b
}

// WithRootID returns c in v3 form with RootID set to hostRoot, the host uid
// of the root of the namespace the capabilities should apply in: for a
// rootless daemon, the user's own uid. v1 and v2 capabilities are converted.
// A v3 capability's old RootID is the caller's to map (it is a host uid that
// the old map sends to some container uid, which the new map sends to
// hostRoot when it is container root); this only replaces it.
func (c Capability) WithRootID(hostRoot uint32) Capability {
	c.Version = 3
	c.RootID = hostRoot
	return c
}
