package chown

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The journal of a Shift lives in Options.JournalDir:
//
//	meta.json  the root (path, dev, ino) and the map, written first
//	journal    append-only records, one per inode, each written and synced
//	           before the inode is changed: a record means "possibly changed"
//	done       the final report, written when the walk completed
//	reversed   the report of a completed Reverse
//
// A record holds the inode's original owner, mode and id-carrying xattrs, so
// a resumed run re-applies the shift from the recorded original (never from
// the current, possibly shifted, state: an offset applied twice is wrong) and
// Reverse restores the original exactly.
const (
	journalMagic  = "unroot-chown-journal 1\n"
	metaFile      = "meta.json"
	journalFile   = "journal"
	doneFile      = "done"
	reversedFile  = "reversed"
	recordVersion = 1
	maxRecord     = 1 << 20
)

// ErrCorruptJournal means a journal record failed its checksum or does not
// decode. A torn record at the very end (a crash mid-write) is not an error:
// it was never synced, so its inode was never changed.
var ErrCorruptJournal = errors.New("corrupt journal")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journalMeta identifies the tree and map a journal belongs to.
type journalMeta struct {
	Root                    string    `json:"root"`
	Dev                     uint64    `json:"dev"`
	Ino                     uint64    `json:"ino"`
	Map                     IDMap     `json:"map"`
	MapUnmappableToOverflow bool      `json:"map_unmappable_to_overflow"`
	Started                 time.Time `json:"started"`
}

// record is the original state of one inode.
type record struct {
	Dev, Ino              uint64
	Rel                   string
	UID, GID, Mode        uint32
	ACLAccess, ACLDefault []byte
	Caps                  []byte
}

const (
	xkACLAccess = iota + 1
	xkACLDefault
	xkCaps
)

// appendRecord encodes r as le32 payload length, le32 CRC-32C of the
// payload, then the payload: u8 version, le64 dev, le64 ino, le32 uid, gid,
// mode, le16 path length, path, u8 xattr count, and per xattr u8 kind, le32
// length, value.
func appendRecord(b []byte, r *record) []byte {
	start := len(b)
	b = append(b, make([]byte, 8)...)
	b = append(b, recordVersion)
	b = binary.LittleEndian.AppendUint64(b, r.Dev)
	b = binary.LittleEndian.AppendUint64(b, r.Ino)
	b = binary.LittleEndian.AppendUint32(b, r.UID)
	b = binary.LittleEndian.AppendUint32(b, r.GID)
	b = binary.LittleEndian.AppendUint32(b, r.Mode)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Rel)))
	b = append(b, r.Rel...)
	var n byte
	for _, v := range [][]byte{r.ACLAccess, r.ACLDefault, r.Caps} {
		if v != nil {
			n++
		}
	}
	b = append(b, n)
	for i, v := range [][]byte{r.ACLAccess, r.ACLDefault, r.Caps} {
		if v == nil {
			continue
		}
		b = append(b, byte(i+1))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	payload := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	return b
}

// decodePayload decodes a checksummed record payload.
func decodePayload(p []byte) (record, error) {
	var r record
	bad := func(what string) (record, error) {
		return record{}, fmt.Errorf("record %s: %w", what, ErrCorruptJournal)
	}
	if len(p) < 1+8+8+12+2+1 || p[0] != recordVersion {
		return bad("header")
	}
	p = p[1:]
	r.Dev, r.Ino = binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:])
	r.UID, r.GID, r.Mode = binary.LittleEndian.Uint32(p[16:]), binary.LittleEndian.Uint32(p[20:]), binary.LittleEndian.Uint32(p[24:])
	n := int(binary.LittleEndian.Uint16(p[28:]))
	p = p[30:]
	if len(p) < n+1 || n == 0 {
		return bad("path")
	}
	r.Rel = string(p[:n])
	nx := int(p[n])
	p = p[n+1:]
	for range nx {
		if len(p) < 5 {
			return bad("xattr")
		}
		kind, l := p[0], int(binary.LittleEndian.Uint32(p[1:]))
		p = p[5:]
		if l > len(p) {
			return bad("xattr length")
		}
		v := append([]byte{}, p[:l]...)
		p = p[l:]
		switch kind {
		case xkACLAccess:
			r.ACLAccess = v
		case xkACLDefault:
			r.ACLDefault = v
		case xkCaps:
			r.Caps = v
		default:
			return bad("xattr kind")
		}
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return r, nil
}

// readJournal calls fn with the offset and content of each record of the
// journal read from r. It returns the length of the valid prefix: a torn
// record at the end stops the read without an error, a record that is
// complete but fails its checksum is [ErrCorruptJournal].
func readJournal(r io.Reader, fn func(off int64, rec record) error) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(journalMagic))
	if n, err := io.ReadFull(br, magic); err != nil {
		if string(magic[:n]) == journalMagic[:n] {
			return 0, nil // never or partly written: nothing was changed
		}
		return 0, fmt.Errorf("journal header: %w", ErrCorruptJournal)
	}
	if string(magic) != journalMagic {
		return 0, fmt.Errorf("journal header: %w", ErrCorruptJournal)
	}
	off := int64(len(journalMagic))
	var hdr [8]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return off, nil // end, or a torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n > maxRecord {
			if tornTail(hdr[:], nil, br) {
				return off, nil
			}
			return off, fmt.Errorf("record at %d of %d bytes: %w", off, n, ErrCorruptJournal)
		}
		payload = slices.Grow(payload[:0], int(n))[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return off, nil // torn payload
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) || n == 0 {
			if tornTail(hdr[:], payload, br) {
				return off, nil
			}
			return off, fmt.Errorf("record at %d: checksum: %w", off, ErrCorruptJournal)
		}
		rec, err := decodePayload(payload)
		if err != nil {
			return off, fmt.Errorf("record at %d: %w", off, err)
		}
		if err := fn(off, rec); err != nil {
			return off, err
		}
		off += 8 + int64(n)
	}
}

// tornTail reports whether a bad record is the unsynced tail a crash left:
// the last thing in the file, or followed only by zeros (a file extended but
// never written) and zero itself.
func tornTail(hdr, payload []byte, rest io.Reader) bool {
	zero := func(b []byte) bool {
		for _, c := range b {
			if c != 0 {
				return false
			}
		}
		return true
	}
	buf := make([]byte, 32<<10)
	first := true
	for {
		n, err := rest.Read(buf)
		if n > 0 {
			if !zero(buf[:n]) || !zero(hdr) || !zero(payload) {
				return false
			}
			first = false
		}
		if err != nil {
			return first || errors.Is(err, io.EOF)
		}
	}
}

// journalWriter appends batches of records. Each batch is synced before the
// inodes it describes are changed; concurrent batches share one fdatasync
// (group commit), so many small directories do not cost one sync each.
type journalWriter struct {
	f      *os.File
	mu     sync.Mutex
	seq    uint64
	syncMu sync.Mutex
	synced uint64
}

func (j *journalWriter) commit(b []byte) error {
	j.mu.Lock()
	_, err := j.f.Write(b)
	j.seq++
	my := j.seq
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= my {
		return nil
	}
	j.mu.Lock()
	cur := j.seq
	j.mu.Unlock()
	if err := unix.Fdatasync(int(j.f.Fd())); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	j.synced = cur
	return nil
}

// journalIndex finds the record of an inode in the journal of an
// interrupted Shift. It keeps 24 bytes per record (dev, ino, offset), sorted,
// and reads records back from the file on a hit: memory grows with the
// inodes journaled before the crash, not with their paths or xattrs. A
// per-directory "batch done" mark would let it keep only the unfinished
// batches, at the price of a second record type; resume is rare, so the
// simpler index wins.
type journalIndex struct {
	f    *os.File
	keys []indexKey
}

type indexKey struct {
	dev, ino uint64
	off      int64
}

func loadIndex(f *os.File) (*journalIndex, int64, error) {
	ix := &journalIndex{f: f}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	valid, err := readJournal(f, func(off int64, r record) error {
		ix.keys = append(ix.keys, indexKey{r.Dev, r.Ino, off})
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	// Stable, so that the first record of an inode (its original state) wins.
	slices.SortStableFunc(ix.keys, func(a, b indexKey) int {
		return cmp.Or(cmp.Compare(a.dev, b.dev), cmp.Compare(a.ino, b.ino))
	})
	return ix, valid, nil
}

// lookup returns the recorded original state of dev:ino.
func (ix *journalIndex) lookup(dev, ino uint64) (record, bool, error) {
	i, ok := slices.BinarySearchFunc(ix.keys, indexKey{dev: dev, ino: ino}, func(a, b indexKey) int {
		return cmp.Or(cmp.Compare(a.dev, b.dev), cmp.Compare(a.ino, b.ino))
	})
	if !ok {
		return record{}, false, nil
	}
	var hdr [8]byte
	off := ix.keys[i].off
	if _, err := ix.f.ReadAt(hdr[:], off); err != nil {
		return record{}, false, fmt.Errorf("read journal: %w", err)
	}
	p := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	if _, err := ix.f.ReadAt(p, off+8); err != nil {
		return record{}, false, fmt.Errorf("read journal: %w", err)
	}
	r, err := decodePayload(p)
	return r, err == nil, err
}

// JournalStatus says what the journal directory dir holds: "none" (no
// shift started), "started" (a shift began and did not finish: running
// Shift again resumes it), "done" (a shift completed) or "reversed".
func JournalStatus(dir string) (string, error) {
	s, err := loadJournalState(dir)
	switch {
	case err != nil:
		return "", err
	case s.reversed != nil:
		return "reversed", nil
	case s.done != nil:
		return "done", nil
	case s.meta != nil:
		return "started", nil
	}
	return "none", nil
}

// journalState is what a journal directory holds.
type journalState struct {
	dir      string
	meta     *journalMeta
	done     *Report
	reversed *Report
}

func loadJournalState(dir string) (*journalState, error) {
	s := &journalState{dir: dir}
	if err := readJSON(filepath.Join(dir, metaFile), &s.meta); err != nil {
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, doneFile), &s.done); err != nil {
		return nil, err
	}
	if err := readJSON(filepath.Join(dir, reversedFile), &s.reversed); err != nil {
		return nil, err
	}
	return s, nil
}

// readJSON decodes path into *v; a missing file leaves *v nil.
func readJSON[T any](path string, v **T) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var x T
	if err := json.Unmarshal(b, &x); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	*v = &x
	return nil
}

// writeJSON writes v to path atomically and durably.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// archive moves the files of a finished (reversed) journal aside, so a new
// Shift of the same tree starts a fresh one.
func (s *journalState) archive() error {
	old := filepath.Join(s.dir, "old-"+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	for _, n := range []string{metaFile, journalFile, doneFile, reversedFile} {
		if err := os.Rename(filepath.Join(s.dir, n), filepath.Join(old, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return syncDir(s.dir)
}
