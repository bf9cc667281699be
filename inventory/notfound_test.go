package inventory

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// TestIsNotFoundRealClientError checks IsNotFound against the error the moby
// client really returns for a daemon's 404 (an HTTP error type without a
// NotFound method): an earlier check by interface alone missed it, so a
// volume removed between the listing and its inspect failed the whole read.
func TestIsNotFoundRealClientError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			_, _ = w.Write([]byte("OK"))
		case strings.Contains(r.URL.Path, "/volumes/"):
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"get gone: no such volume"}`))
		default:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"boom"}`))
		}
	}))
	defer srv.Close()
	c, err := client.New(client.WithHost("tcp://" + strings.TrimPrefix(srv.URL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.VolumeInspect(context.Background(), "gone", client.VolumeInspectOptions{})
	if err == nil || !IsNotFound(err) {
		t.Errorf("IsNotFound(%v (%T)) = false, want true", err, err)
	}
	_, err = c.NetworkInspect(context.Background(), "x", client.NetworkInspectOptions{})
	if err == nil || IsNotFound(err) {
		t.Errorf("IsNotFound(%v) = true for a 500", err)
	}
	if IsNotFound(nil) {
		t.Error("IsNotFound(nil) = true")
	}
}
