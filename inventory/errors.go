package inventory

import (
	"fmt"
	"strings"
)

// NotFoundError says that a named object does not exist on the daemon. Its
// Suggestion, when set, is the existing name closest to Name.
type NotFoundError struct {
	Kind       string // "container", "volume", "network", "image", "project"
	Name       string
	Suggestion string
	// Ambiguous is true when Name is an ID prefix matching several objects.
	Ambiguous bool
}

func (e *NotFoundError) Error() string {
	if e.Ambiguous {
		return fmt.Sprintf("%s ID prefix %q matches more than one %s", e.Kind, e.Name, e.Kind)
	}
	msg := fmt.Sprintf("no %s named %q", e.Kind, e.Name)
	if e.Suggestion != "" {
		msg += fmt.Sprintf("; did you mean %q?", e.Suggestion)
	}
	return msg
}

// Hint names the docker command that lists the existing objects.
func (e *NotFoundError) Hint() string {
	switch e.Kind {
	case "container":
		return "run 'docker ps -a' against the source daemon to see the names"
	case "volume":
		return "run 'docker volume ls' against the source daemon to see the names"
	case "network":
		return "run 'docker network ls' against the source daemon to see the names"
	case "image":
		return "run 'docker image ls' to see the images"
	case "project":
		return "run 'docker compose ls -a' to see the projects"
	}
	return ""
}

// notFound builds a NotFoundError for name, suggesting the closest of have.
func notFound(kind, name string, have []string) *NotFoundError {
	return &NotFoundError{Kind: kind, Name: name, Suggestion: Suggest(name, have)}
}

// Suggest returns the candidate closest to name by edit distance, or "" when
// none is close enough to be a plausible typo: at most a third of the
// longer name's length, and at least 1, may differ. A candidate that differs
// only in case, or that name is a prefix of, always qualifies.
func Suggest(name string, candidates []string) string {
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		return ""
	}
	best, bestD := "", -1
	for _, c := range candidates {
		if c == "" {
			continue
		}
		d := EditDistance(strings.ToLower(name), strings.ToLower(c))
		limit := max(len([]rune(name)), len([]rune(c))) / 3
		limit = max(limit, 1)
		ok := d <= limit || strings.HasPrefix(c, name)
		if !ok {
			continue
		}
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	return best
}

// EditDistance returns the optimal-string-alignment distance between a and
// b in runes: insertions, deletions, substitutions and transpositions of two
// adjacent runes each cost 1, so "wbe" is one edit from "web".
func EditDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func isHex(s string) bool {
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
