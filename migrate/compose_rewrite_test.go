package migrate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const composeTestdata = "../testdata/compose"

// shiftPrivileged is the default rewrite of the plan: host ports below 1024
// move up by 8000, a range as a whole.
func shiftPrivileged(_, _, _, published string) (string, bool) {
	lo, hi, isRange := strings.Cut(published, "-")
	l, err := strconv.Atoi(lo)
	if err != nil {
		return "", false
	}
	h := l
	if isRange {
		if h, err = strconv.Atoi(hi); err != nil {
			return "", false
		}
	}
	n, _ := RewritePort(uint16(l), PrivilegedPortStart, nil)
	if int(n) == l {
		return published, true
	}
	return formatRange(int(n), int(n)+h-l), true
}

func TestRewriteComposeGolden(t *testing.T) {
	tests := []struct {
		file        string
		wantChanges int
		wantManual  int
		mustKeep    []string
	}{
		{"short-ports.yaml", 3, 0, []string{"# shop stack: the web front and its db", "# pinned on purpose", "# public http", "# daemon picks the host port", "# no ports: reached over the network", `"8080"`, "127.0.0.1::25", `"3000:3000"`}},
		{"long-ports.yaml", 3, 0, []string{"mode: host", "target: 9000"}},
		{"socket.yaml", 2, 0, []string{"<<: *common", "# needs the API", "- ./conf:/conf", "target: /var/run/docker.sock"}},
		{"variables.yaml", 0, 2, []string{"${HTTP_PORT:-80}:80", "${HTTPS_PORT}"}},
		{"anchors.yaml", 1, 0, []string{"ports: *ports", "&ports"}},
		{"unchanged.yaml", 0, 0, []string{"# nothing to rewrite here", `"5000:5000"`}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(composeTestdata, "rewrite", tt.file)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := RewriteComposeFile(path, ComposeRewrite{
				Port: shiftPrivileged, Socket: "/run/user/1001/docker.sock",
				Header: "written by unroot\nhost ports rewritten",
			})
			if err != nil {
				t.Fatal(err)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, orig) {
				t.Fatal("the original file changed")
			}
			if len(res.Changes) != tt.wantChanges {
				t.Errorf("changes = %d %v, want %d", len(res.Changes), res.Changes, tt.wantChanges)
			}
			if len(res.Manual) != tt.wantManual {
				t.Errorf("manual = %d %v, want %d", len(res.Manual), res.Manual, tt.wantManual)
			}
			out := string(res.Content)
			if !strings.HasPrefix(out, "# written by unroot\n# host ports rewritten\n") {
				t.Errorf("no header at the top:\n%s", out)
			}
			for _, s := range tt.mustKeep {
				if !strings.Contains(out, s) {
					t.Errorf("output lost %q:\n%s", s, out)
				}
			}
			var v any
			if err := yaml.Unmarshal(res.Content, &v); err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			var g bytes.Buffer
			g.Write(res.Content)
			g.WriteString("#### changes\n")
			for _, c := range res.Changes {
				fmt.Fprintln(&g, c)
			}
			g.WriteString("#### manual\n")
			for _, m := range res.Manual {
				fmt.Fprintln(&g, m)
			}
			checkComposeGolden(t, filepath.Join("rewrite", strings.TrimSuffix(tt.file, ".yaml")+".golden"), g.Bytes())
		})
	}
}

func checkComposeGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(composeTestdata, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./migrate -run Compose -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output; run go test ./migrate -run Compose -update and review the diff\ngot:\n%s", path, got)
	}
}

func TestRewriteComposePorts(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"published and target", `"80:80"`, `"8080:80"`},
		{"host ip", `"127.0.0.1:80:80"`, `"127.0.0.1:8080:80"`},
		{"target only", `"80"`, `"80"`},
		{"range", `"80-81:80-81"`, `"8080-8081:80-81"`},
		{"protocol", `"53:53/udp"`, `"8053:53/udp"`},
		{"ipv6 in brackets", `"[::1]:80:80"`, `"[::1]:8080:80"`},
		{"ipv6 bare", `"::1:80:80"`, `"::1:8080:80"`},
		{"plain scalar gets quoted", `80:80`, `"8080:80"`},
		{"single quotes kept", `'80:80'`, `'8080:80'`},
		{"unprivileged", `"8443:443"`, `"8443:443"`},
		{"empty published", `"127.0.0.1::80"`, `"127.0.0.1::80"`},
		{"integer", `80`, `80`},
		{"long int", "{target: 80, published: 80}", "{target: 80, published: 8080}"},
		{"long range", "{target: 80, published: 80-81}", `{target: 80, published: "8080-8081"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "services:\n  s:\n    ports:\n      - " + tt.in + "\n"
			res, err := RewriteCompose(strings.NewReader(in), ComposeRewrite{Port: shiftPrivileged})
			if err != nil {
				t.Fatal(err)
			}
			want := "services:\n  s:\n    ports:\n      - " + tt.want + "\n"
			if string(res.Content) != want {
				t.Errorf("got\n%s\nwant\n%s", res.Content, want)
			}
			if changed := tt.in != tt.want; changed != (len(res.Changes) == 1) {
				t.Errorf("changes = %v", res.Changes)
			}
		})
	}
}

func TestRewriteComposePortArguments(t *testing.T) {
	in := `services:
  web:
    ports:
      - "127.0.0.1:80:80/UDP"
      - target: 443
        host_ip: "[::1]"
        published: 443
`
	var got []string
	_, err := RewriteCompose(strings.NewReader(in), ComposeRewrite{Port: func(svc, proto, ip, pub string) (string, bool) {
		got = append(got, strings.Join([]string{svc, proto, ip, pub}, "|"))
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"web|udp|127.0.0.1|80", "web|tcp|::1|443"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Port called with %v, want %v", got, want)
	}
}

func TestRewriteComposeSocket(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"short", "/var/run/docker.sock:/var/run/docker.sock", "/run/user/7/docker.sock:/var/run/docker.sock"},
		{"short ro", "/run/docker.sock:/sock:ro", "/run/user/7/docker.sock:/sock:ro"},
		{"doubled slash", "/var/run//docker.sock:/sock", "/run/user/7/docker.sock:/sock"},
		{"other bind", "/srv/docker.sock:/sock", "/srv/docker.sock:/sock"},
		{"volume named like it", "docker.sock:/sock", "docker.sock:/sock"},
		{"target only", "/var/run/docker.sock", "/var/run/docker.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := "services:\n  s:\n    volumes:\n      - " + tt.in + "\n"
			res, err := RewriteCompose(strings.NewReader(in), ComposeRewrite{Socket: "/run/user/7/docker.sock"})
			if err != nil {
				t.Fatal(err)
			}
			want := "services:\n  s:\n    volumes:\n      - " + tt.want + "\n"
			if string(res.Content) != want {
				t.Errorf("got\n%s\nwant\n%s", res.Content, want)
			}
		})
	}
}

func TestRewriteComposeErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"not yaml", "services: [\n"},
		{"a list", "- a\n- b\n"},
		{"a scalar", "hello\n"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := RewriteCompose(strings.NewReader(tt.in), ComposeRewrite{Port: shiftPrivileged}); err == nil {
				t.Error("no error")
			}
		})
	}
}

func FuzzRewriteCompose(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(composeTestdata, "rewrite", "*.yaml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("services:\n  s:\n    ports: [\"80:80\", {published: 1-2}]\n    volumes: [\"/run/docker.sock:/x\"]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := RewriteCompose(bytes.NewReader(in), ComposeRewrite{Port: shiftPrivileged, Socket: "/run/user/1/docker.sock", Header: "h"})
		if err != nil {
			return
		}
		var v yaml.Node
		if err := yaml.Unmarshal(res.Content, &v); err != nil {
			t.Fatalf("output does not parse: %v\ninput:\n%s\noutput:\n%s", err, in, res.Content)
		}
		// A second pass finds nothing left to change: rewritten ports are
		// unprivileged and the socket is no longer the rootful one.
		again, err := RewriteCompose(bytes.NewReader(res.Content), ComposeRewrite{Port: shiftPrivileged, Socket: "/run/user/1/docker.sock"})
		if err != nil {
			t.Fatalf("output does not rewrite again: %v\n%s", err, res.Content)
		}
		if len(again.Changes) != 0 {
			t.Fatalf("second pass changed %v\noutput:\n%s", again.Changes, res.Content)
		}
	})
}
