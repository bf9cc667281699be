package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/unroot/unroot/chown"
)

// owners are the ids a generated tree holds, with rough weights: most files
// belong to root or www-data, as in real volumes.
var owners = []struct {
	id     uint32
	weight int
}{{0, 40}, {33, 25}, {70, 10}, {999, 10}, {1000, 10}, {65534, 5}}

// genSpec describes a generated tree.
type genSpec struct {
	Files      int    // regular files of 1 B–8 KiB
	PerDir     int    // files per leaf directory
	LargeFiles int    // files of LargeSize bytes
	LargeSize  int64  // bytes
	Seed       uint64 // same seed, same tree
}

// genStats counts what generate wrote.
type genStats struct {
	Files, Dirs, Symlinks, Hardlinks, Setuid, ACLs, Caps, Sparse int
	Bytes                                                        int64
}

func pickOwner(r *rand.Rand) uint32 {
	n := r.IntN(100)
	for _, o := range owners {
		if n < o.weight {
			return o.id
		}
		n -= o.weight
	}
	return 0
}

// generate writes a deterministic volume-like tree under root (created if
// missing): spec.Files small files in leaf directories three levels deep,
// mixed owners, plus large files and the awkward cases (setuid, ACLs,
// capabilities, hardlinks, symlinks, one sparse file).
func generate(root string, spec genSpec) (genStats, error) {
	var st genStats
	if spec.PerDir <= 0 {
		spec.PerDir = 100
	}
	r := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	content := make([]byte, 16<<10)
	for i := range content {
		content[i] = byte(r.IntN(256))
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return st, err
	}
	acl := chown.ACL{Entries: []chown.ACLEntry{
		{Tag: chown.ACLUserObj, Perm: 6, ID: chown.ACLUndefinedID},
		{Tag: chown.ACLUser, Perm: 6, ID: 33},
		{Tag: chown.ACLGroupObj, Perm: 4, ID: chown.ACLUndefinedID},
		{Tag: chown.ACLGroup, Perm: 4, ID: 999},
		{Tag: chown.ACLMask, Perm: 6, ID: chown.ACLUndefinedID},
		{Tag: chown.ACLOther, Perm: 4, ID: chown.ACLUndefinedID},
	}}.Marshal()
	caps := chown.Capability{Version: 2, Effective: true, Permitted: [2]uint32{1 << 10, 0}}.Marshal() // cap_net_bind_service

	madeDirs := map[string]bool{}
	var prevFile string
	for i := 0; i < spec.Files; i++ {
		d := i / spec.PerDir
		dir := filepath.Join(root, fmt.Sprintf("a%02d", d/100), fmt.Sprintf("b%d", (d/10)%10), fmt.Sprintf("c%d", d%10))
		if !madeDirs[dir] {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return st, err
			}
			// Three levels: count the leaf and any new parents once.
			for p := dir; p != root && !madeDirs[p]; p = filepath.Dir(p) {
				madeDirs[p] = true
				st.Dirs++
				o := pickOwner(r)
				if err := os.Lchown(p, int(o), int(o)); err != nil {
					return st, err
				}
			}
		}
		name := filepath.Join(dir, fmt.Sprintf("f%06d", i))
		size := 1 + r.IntN(8192)
		off := r.IntN(len(content) - size)
		if err := os.WriteFile(name, content[off:off+size], 0o644); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += int64(size)
		uid, gid := pickOwner(r), pickOwner(r)
		if r.IntN(4) != 0 {
			gid = uid
		}
		if err := os.Lchown(name, int(uid), int(gid)); err != nil {
			return st, err
		}
		switch {
		case i%1000 == 7: // setuid root binary (chmod after chown: chown clears it)
			if err := os.Lchown(name, 0, 0); err != nil {
				return st, err
			}
			if err := os.Chmod(name, 0o4755); err != nil {
				return st, err
			}
			st.Setuid++
		case i%5000 == 11:
			if err := chown.SetXattr(name, chown.XattrACLAccess, acl); err != nil {
				return st, fmt.Errorf("acl on %s: %w", name, err)
			}
			st.ACLs++
		case i%5000 == 13:
			if err := chown.SetXattr(name, chown.XattrCapability, caps); err != nil {
				return st, fmt.Errorf("capability on %s: %w", name, err)
			}
			st.Caps++
		}
		if i%2000 == 17 {
			if err := os.Link(name, name+".link"); err != nil {
				return st, err
			}
			st.Hardlinks++
		}
		if i%1000 == 19 && prevFile != "" {
			rel, err := filepath.Rel(dir, prevFile)
			if err != nil {
				return st, err
			}
			l := name + ".sym"
			if err := os.Symlink(rel, l); err != nil {
				return st, err
			}
			o := pickOwner(r)
			if err := os.Lchown(l, int(o), int(o)); err != nil {
				return st, err
			}
			st.Symlinks++
		}
		prevFile = name
	}
	big := filepath.Join(root, "large")
	if spec.LargeFiles > 0 {
		if err := os.MkdirAll(big, 0o755); err != nil {
			return st, err
		}
		st.Dirs++
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < spec.LargeFiles; i++ {
		f, err := os.Create(filepath.Join(big, fmt.Sprintf("blob%d", i)))
		if err != nil {
			return st, err
		}
		for w := int64(0); w < spec.LargeSize; w += int64(len(buf)) {
			for j := 0; j < len(buf); j += 8 {
				v := r.Uint64()
				for k := 0; k < 8; k++ {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
			n := min(int64(len(buf)), spec.LargeSize-w)
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return st, err
			}
		}
		if err := f.Close(); err != nil {
			return st, err
		}
		if err := os.Lchown(f.Name(), 999, 999); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes += spec.LargeSize
	}
	// One sparse file: 64 MiB apparent, 8 KiB of data at both ends.
	sp := filepath.Join(root, "sparse.img")
	f, err := os.Create(sp)
	if err != nil {
		return st, err
	}
	if _, err := f.Write(content[:4096]); err != nil {
		f.Close()
		return st, err
	}
	if _, err := f.WriteAt(content[:4096], 64<<20-4096); err != nil {
		f.Close()
		return st, err
	}
	if err := f.Close(); err != nil {
		return st, err
	}
	if err := os.Lchown(sp, 70, 70); err != nil {
		return st, err
	}
	st.Files++
	st.Sparse++
	st.Bytes += 8192
	return st, nil
}
