package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ComposeRewrite says what [RewriteCompose] changes in a compose file.
// Everything it does not name stays as it was.
type ComposeRewrite struct {
	// Port returns the new host port (a number or a range "A-B") of a
	// published port of service, given its protocol ("tcp" when the file
	// does not say), host IP ("" when the file gives none) and host port
	// as written. ok false leaves the entry alone; ok with "" says the
	// entry cannot be rewritten as one and must be edited by hand (e.g. a
	// range whose ports the plan moved apart). nil changes no port.
	Port func(service, proto, hostIP, published string) (string, bool)
	// Socket is the rootless daemon's socket path; a bind whose source is
	// the rootful socket (/var/run/docker.sock or /run/docker.sock) gets it
	// as its source. Empty leaves such binds alone.
	Socket string
	// Header is written as a comment block above the document, one "# "
	// line per line of it.
	Header string
}

// ComposeChange is one edit of a compose file.
type ComposeChange struct {
	Service string `json:"service"`
	// Field is "ports" or "volumes".
	Field string `json:"field"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

// String formats the change as "service web ports: 80:80 → 8080:80".
func (c ComposeChange) String() string {
	return fmt.Sprintf("service %s %s: %s → %s", c.Service, c.Field, c.Old, c.New)
}

// ComposeRewriteResult is the rewritten file and what changed.
type ComposeRewriteResult struct {
	Content []byte
	Changes []ComposeChange
	// Manual lists what needs a rewrite unroot could not make, e.g. a host
	// port given by a variable.
	Manual []string

	// manualServices are the services Manual speaks of.
	manualServices map[string]bool
}

// ErrNotCompose is returned for input that is YAML but not a compose file
// (no mapping at the top).
var ErrNotCompose = errors.New("not a compose file: the document is not a mapping")

// RewriteCompose reads one compose file and rewrites, per rw, the host
// ports its services publish and the source of docker socket binds, in
// short and long syntax. It edits the YAML node tree of the original text,
// so comments, key order, anchors and every other field survive; only
// indentation is normalised to two spaces.
func RewriteCompose(r io.Reader, rw ComposeRewrite) (*ComposeRewriteResult, error) {
	src, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read compose file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("parse compose file: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, ErrNotCompose
	}
	res := &ComposeRewriteResult{}
	rwr := &rewriter{rw: rw, res: res, seen: map[*yaml.Node]bool{}}
	if services := mapValue(doc.Content[0], "services"); services != nil {
		services = deref(services)
		if services.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(services.Content); i += 2 {
				rwr.service(services.Content[i].Value, deref(services.Content[i+1]))
			}
		}
	}
	untagMerge(&doc)
	if rw.Header != "" {
		var h strings.Builder
		for line := range strings.SplitSeq(strings.TrimRight(rw.Header, "\n"), "\n") {
			h.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
		if doc.HeadComment != "" {
			h.WriteString("\n" + doc.HeadComment)
		}
		doc.HeadComment = strings.TrimRight(h.String(), "\n")
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("write compose file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write compose file: %w", err)
	}
	res.Content = out.Bytes()
	return res, nil
}

// RewriteComposeFile is [RewriteCompose] of the file at path.
func RewriteComposeFile(path string, rw ComposeRewrite) (*ComposeRewriteResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res, err := RewriteCompose(f, rw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return res, nil
}

type rewriter struct {
	rw  ComposeRewrite
	res *ComposeRewriteResult
	// seen holds nodes already rewritten: an anchor shared by several
	// services is rewritten once.
	seen map[*yaml.Node]bool
}

func (w *rewriter) service(name string, svc *yaml.Node) {
	if svc == nil || svc.Kind != yaml.MappingNode {
		return
	}
	if ports := mapValue(svc, "ports"); ports != nil && w.rw.Port != nil {
		if ports = deref(ports); ports.Kind == yaml.SequenceNode {
			for _, p := range ports.Content {
				w.port(name, deref(p))
			}
		}
	}
	if vols := mapValue(svc, "volumes"); vols != nil && w.rw.Socket != "" {
		if vols = deref(vols); vols.Kind == yaml.SequenceNode {
			for _, v := range vols.Content {
				w.volume(name, deref(v))
			}
		}
	}
}

func (w *rewriter) change(service, field, old, new string) {
	w.res.Changes = append(w.res.Changes, ComposeChange{Service: service, Field: field, Old: old, New: new})
}

func (w *rewriter) manual(service, format string, a ...any) {
	w.res.Manual = append(w.res.Manual, fmt.Sprintf(format, a...))
	if w.res.manualServices == nil {
		w.res.manualServices = map[string]bool{}
	}
	w.res.manualServices[service] = true
}

// port rewrites one entry of a service's ports.
func (w *rewriter) port(service string, n *yaml.Node) {
	if n == nil || w.seen[n] {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "$") {
			w.manual(service, "service %s: port %q comes from a variable; make sure its host port is one the rootless daemon can bind", service, n.Value)
			return
		}
		sp, ok := parseShortPort(n.Value)
		if !ok || sp.published == "" {
			return // only a container port: the daemon picks the host port
		}
		np, ok := w.rw.Port(service, sp.proto, unbracket(sp.ip), sp.published)
		if !ok || np == sp.published {
			return
		}
		if np == "" {
			w.manual(service, "service %s: port %q cannot be rewritten as one entry; edit it to the host ports the plan gives", service, n.Value)
			return
		}
		old := n.Value
		sp.published = np
		n.Value = sp.String()
		n.Tag = "!!str"
		if n.Style == 0 {
			n.Style = yaml.DoubleQuotedStyle
		}
		w.seen[n] = true
		w.change(service, "ports", old, n.Value)
	case yaml.MappingNode:
		pub := mapValue(n, "published")
		if pub == nil || pub.Kind != yaml.ScalarNode || pub.Value == "" {
			return
		}
		if strings.Contains(pub.Value, "$") {
			w.manual(service, "service %s: published port %q comes from a variable; make sure it is one the rootless daemon can bind", service, pub.Value)
			return
		}
		proto, ip := "tcp", ""
		if p := mapValue(n, "protocol"); p != nil && p.Kind == yaml.ScalarNode && p.Value != "" {
			proto = strings.ToLower(p.Value)
		}
		if h := mapValue(n, "host_ip"); h != nil && h.Kind == yaml.ScalarNode {
			ip = unbracket(h.Value)
		}
		np, ok := w.rw.Port(service, proto, ip, pub.Value)
		if !ok || np == pub.Value {
			return
		}
		if np == "" {
			w.manual(service, "service %s: published port %q cannot be rewritten as one entry; edit it to the host ports the plan gives", service, pub.Value)
			return
		}
		old := pub.Value
		pub.Value = np
		if _, err := strconv.Atoi(np); err == nil && pub.Tag == "!!int" {
			pub.Style = 0
		} else {
			pub.Tag = "!!str"
			if pub.Style == 0 {
				pub.Style = yaml.DoubleQuotedStyle
			}
		}
		w.seen[n] = true
		w.change(service, "ports", "published: "+old, "published: "+np)
	}
}

// volume rewrites the source of a docker socket bind.
func (w *rewriter) volume(service string, n *yaml.Node) {
	if n == nil || w.seen[n] {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		src, rest, ok := strings.Cut(n.Value, ":")
		if !ok || !isDockerSocket(cleanSocketPath(src)) {
			return
		}
		old := n.Value
		n.Value = w.rw.Socket + ":" + rest
		w.seen[n] = true
		w.change(service, "volumes", old, n.Value)
	case yaml.MappingNode:
		if t := mapValue(n, "type"); t != nil && t.Value != "" && t.Value != "bind" {
			return
		}
		s := mapValue(n, "source")
		if s == nil || s.Kind != yaml.ScalarNode || !isDockerSocket(cleanSocketPath(s.Value)) {
			return
		}
		old := s.Value
		s.Value = w.rw.Socket
		w.seen[n] = true
		w.change(service, "volumes", "source: "+old, "source: "+s.Value)
	}
}

// cleanSocketPath drops trailing slashes and doubled separators so that
// "/var/run//docker.sock" is recognised.
func cleanSocketPath(p string) string {
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return strings.TrimSuffix(p, "/")
}

// shortPort is a port in compose's short syntax
// "[[IP:]PUBLISHED:]TARGET[/PROTO]".
type shortPort struct {
	ip, published, target, proto string
	hasIP, hasProto              bool
}

// parseShortPort splits a short-syntax port; false for text that is not one.
func parseShortPort(s string) (shortPort, bool) {
	var sp shortPort
	s = strings.TrimSpace(s)
	if s == "" {
		return sp, false
	}
	sp.proto = "tcp"
	if i := strings.LastIndex(s, "/"); i >= 0 {
		sp.proto, sp.hasProto = strings.ToLower(s[i+1:]), true
		s = s[:i]
	}
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 || end+1 >= len(s) || s[end+1] != ':' {
			return sp, false
		}
		sp.ip, sp.hasIP = s[:end+1], true
		s = s[end+2:]
		pub, target, ok := strings.Cut(s, ":")
		if !ok || strings.Contains(target, ":") {
			return sp, false
		}
		sp.published, sp.target = pub, target
		return sp, true
	}
	parts := strings.Split(s, ":")
	switch n := len(parts); {
	case n == 1:
		sp.target = parts[0]
	case n == 2:
		sp.published, sp.target = parts[0], parts[1]
	default:
		// An IPv6 address without brackets holds colons of its own.
		sp.ip, sp.hasIP = strings.Join(parts[:n-2], ":"), true
		sp.published, sp.target = parts[n-2], parts[n-1]
	}
	return sp, true
}

// String writes the port back in the form it was read.
func (sp shortPort) String() string {
	var b strings.Builder
	if sp.hasIP {
		b.WriteString(sp.ip + ":")
	}
	if sp.published != "" || sp.hasIP {
		b.WriteString(sp.published + ":")
	}
	b.WriteString(sp.target)
	if sp.hasProto {
		b.WriteString("/" + sp.proto)
	}
	return b.String()
}

func unbracket(ip string) string {
	return strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
}

// mapValue returns the value of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// untagMerge clears the explicit !!merge tag the decoder puts on "<<" keys,
// which the encoder would otherwise write out.
func untagMerge(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!merge" && n.Value == "<<" {
		n.Tag = ""
	}
	for _, c := range n.Content {
		untagMerge(c)
	}
}
