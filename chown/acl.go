package chown

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Names of the extended attributes that carry ids and so must be shifted with
// the owner.
const (
	// XattrACLAccess holds a file's access ACL, in the [ACL] format.
	XattrACLAccess = "system.posix_acl_access"
	// XattrACLDefault holds a directory's default ACL, in the [ACL] format.
	XattrACLDefault = "system.posix_acl_default"
	// XattrCapability holds a file's capabilities, in the [Capability] format.
	XattrCapability = "security.capability"
)

// Tags of POSIX ACL entries (include/uapi/linux/posix_acl.h). Only
// [ACLUser] and [ACLGroup] entries carry an id; the others carry
// [ACLUndefinedID].
const (
	ACLUserObj  = 0x01
	ACLUser     = 0x02
	ACLGroupObj = 0x04
	ACLGroup    = 0x08
	ACLMask     = 0x10
	ACLOther    = 0x20
)

// ACLUndefinedID is the id of entries whose tag names no user or group.
const ACLUndefinedID = 0xFFFFFFFF

const (
	aclVersion    = 2
	aclHeaderSize = 4
	aclEntrySize  = 8
	aclPermMask   = 0x7 // read, write, execute: the kernel refuses other bits
)

// ACLEntry is one entry of a POSIX ACL: a tag, rwx permission bits and, for
// [ACLUser] and [ACLGroup], the uid or gid it applies to.
type ACLEntry struct {
	Tag  uint16
	Perm uint16
	ID   uint32
}

// ACL is a POSIX ACL as stored in the system.posix_acl_access and
// system.posix_acl_default xattrs: a le32 version 2 header, then entries of
// le16 tag, le16 perm, le32 id.
type ACL struct {
	Entries []ACLEntry
}

// ErrMalformedXattr means an xattr value is not in the format its name
// implies.
var ErrMalformedXattr = errors.New("malformed xattr value")

// UnmarshalACL decodes a POSIX ACL xattr value. It is strict: the version must
// be 2, the size 4+8n, every tag known and every permission within rwx;
// otherwise the error wraps [ErrMalformedXattr]. Ids are kept as stored, so
// [ACL.Marshal] gives back b.
func UnmarshalACL(b []byte) (ACL, error) {
	if len(b) < aclHeaderSize || (len(b)-aclHeaderSize)%aclEntrySize != 0 {
		return ACL{}, fmt.Errorf("acl of %d bytes, want 4+8n: %w", len(b), ErrMalformedXattr)
	}
	if v := binary.LittleEndian.Uint32(b); v != aclVersion {
		return ACL{}, fmt.Errorf("acl version %d, want %d: %w", v, aclVersion, ErrMalformedXattr)
	}
	n := (len(b) - aclHeaderSize) / aclEntrySize
	a := ACL{Entries: make([]ACLEntry, n)}
	for i := range n {
		e := b[aclHeaderSize+i*aclEntrySize:]
		ent := ACLEntry{
			Tag:  binary.LittleEndian.Uint16(e),
			Perm: binary.LittleEndian.Uint16(e[2:]),
			ID:   binary.LittleEndian.Uint32(e[4:]),
		}
		switch ent.Tag {
		case ACLUserObj, ACLUser, ACLGroupObj, ACLGroup, ACLMask, ACLOther:
		default:
			return ACL{}, fmt.Errorf("acl entry %d: unknown tag %#x: %w", i+1, ent.Tag, ErrMalformedXattr)
		}
		if ent.Perm&^aclPermMask != 0 {
			return ACL{}, fmt.Errorf("acl entry %d: permission bits %#x beyond rwx: %w", i+1, ent.Perm, ErrMalformedXattr)
		}
		a.Entries[i] = ent
	}
	return a, nil
}

// Marshal encodes a in the xattr format [UnmarshalACL] reads.
func (a ACL) Marshal() []byte {
	b := make([]byte, aclHeaderSize+aclEntrySize*len(a.Entries))
	binary.LittleEndian.PutUint32(b, aclVersion)
	for i, ent := range a.Entries {
		e := b[aclHeaderSize+i*aclEntrySize:]
		binary.LittleEndian.PutUint16(e, ent.Tag)
		binary.LittleEndian.PutUint16(e[2:], ent.Perm)
		binary.LittleEndian.PutUint32(e[4:], ent.ID)
	}
	return b
}

// Shift returns a copy of a whose [ACLUser] ids are mapped with uid and whose
// [ACLGroup] ids are mapped with gid (typically [IDMap.HostUID] and
// [IDMap.HostGID]). The first id a function cannot map is returned as an
// [*UnmappableError], and a itself is never changed.
func (a ACL) Shift(uid, gid func(uint32) (uint32, bool)) (ACL, error) {
	out := ACL{Entries: make([]ACLEntry, len(a.Entries))}
	for i, ent := range a.Entries {
		switch ent.Tag {
		case ACLUser:
			id, ok := uid(ent.ID)
			if !ok {
				return ACL{}, &UnmappableError{Kind: "uid", ID: ent.ID}
			}
			ent.ID = id
		case ACLGroup:
			id, ok := gid(ent.ID)
			if !ok {
				return ACL{}, &UnmappableError{Kind: "gid", ID: ent.ID}
			}
			ent.ID = id
		}
		out.Entries[i] = ent
	}
	return out, nil
}

// HasIDs reports whether a has an entry that names a user or group, that is,
// whether [ACL.Shift] can change it.
func (a ACL) HasIDs() bool {
	for _, ent := range a.Entries {
		if ent.Tag == ACLUser || ent.Tag == ACLGroup {
			return true
		}
	}
	return false
}
