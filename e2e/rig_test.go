package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRigDaemons proves the rig is what the other tests assume: a rootful
// source, a rootless target and the test image in the source.
func TestRigDaemons(t *testing.T) {
	r := Load(t)
	var src, dst struct {
		SecurityOptions []string
		CgroupDriver    string
	}
	if err := json.Unmarshal([]byte(r.Docker(t, false, "info", "--format", "{{json .}}")), &src); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(r.Docker(t, true, "info", "--format", "{{json .}}")), &dst); err != nil {
		t.Fatal(err)
	}
	if has(src.SecurityOptions, "name=rootless") {
		t.Errorf("source daemon is rootless: %v", src.SecurityOptions)
	}
	if !has(dst.SecurityOptions, "name=rootless") {
		t.Errorf("target daemon is not rootless: %v", dst.SecurityOptions)
	}
	if got := r.Docker(t, false, "image", "inspect", "--format", "{{.Id}}", r.Image); !strings.HasPrefix(got, "sha256:") {
		t.Errorf("test image %s not in source: %q", r.Image, got)
	}
	if r.SubUIDStart == 100000 {
		t.Errorf("rig uses subuid start 100000; it must not, so code assuming it is caught")
	}
}

// TestUnrootVersion runs the built binary.
func TestUnrootVersion(t *testing.T) {
	r := Load(t)
	out, errOut, code := r.Unroot(t, "version", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var v struct{ Version, Go string }
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version == "" || v.Go == "" {
		t.Fatalf("version json %q: %v", out, err)
	}
}

func has(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}
