package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCheckUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  []string // substrings of stderr
	}{
		{"unknown format", []string{"check", "--user", "root", "--format", "yaml"}, exitUsage,
			[]string{`unknown --format "yaml"`, "hint: use one of: text, json"}},
		{"missing user", []string{"check"}, exitUsage,
			[]string{"--user is required", "hint: name the rootless target user"}},
		{"extra argument", []string{"check", "--user", "root", "extra"}, exitUsage,
			[]string{"unknown command", "hint:"}},
		{"unknown flag", []string{"check", "--frobnicate"}, exitUsage,
			[]string{"unknown flag: --frobnicate", "hint:"}},
		{"unknown user", []string{"check", "--user", "nosuchuser-unroot"}, exitFailed,
			[]string{`user "nosuchuser-unroot" not found on this host`, "hint: create it first"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.wantCode, errb.String())
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q lacks %q", errb.String(), w)
				}
			}
			if out.Len() != 0 {
				t.Errorf("stdout is not empty: %q", out.String())
			}
		})
	}
}
