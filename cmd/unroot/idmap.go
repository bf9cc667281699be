package main

import (
	"errors"
	"fmt"

	"github.com/unroot/unroot/chown"
)

// resolvedMap is the id map unroot shifts with, and where it came from.
type resolvedMap struct {
	Map chown.IDMap
	// Source is "live" (the running rootless daemon's uid_map/gid_map) or
	// "subid" (/etc/subuid and /etc/subgid with the rootless formula).
	Source string
	// Diffs says how the live map differs from the files; the live one wins.
	Diffs []string
}

// resolveMap builds the rootless id map of u: from the live daemon where it
// runs, cross-checked with /etc/subuid and /etc/subgid.
func resolveMap(u targetUser) (resolvedMap, error) {
	subuids, uerr := chown.ParseSubIDsFile("/etc/subuid", u.Name, u.UID)
	subgids, gerr := chown.ParseSubIDsFile("/etc/subgid", u.Name, u.UID)
	var files chown.IDMap
	var ferr error
	if err := errors.Join(uerr, gerr); err != nil {
		ferr = err
	} else {
		files, ferr = chown.RootlessMap(uint32(u.UID), uint32(u.GID), subuids, subgids)
	}
	live, _, lerr := chown.LiveMap(u.runtimeDir(), "/proc")
	switch {
	case lerr == nil:
		r := resolvedMap{Map: live, Source: "live"}
		if ferr == nil {
			r.Diffs = chown.DiffMaps(live, files)
		} else {
			r.Diffs = []string{fmt.Sprintf("/etc/subuid or /etc/subgid gives no map for %s: %v", u.Name, ferr)}
		}
		return r, nil
	case ferr == nil:
		return resolvedMap{Map: files, Source: "subid"}, nil
	default:
		return resolvedMap{}, failErr(fmt.Errorf("no id map for %s: %w", u.Name, ferr),
			fmt.Sprintf("give the user a range: 'usermod --add-subuids 231072-296607 --add-subgids 231072-296607 %s', then run 'unroot check --user %s'", u.Name, u.Name))
	}
}
