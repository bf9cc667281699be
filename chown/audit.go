package chown

import "context"

// Audit walks the tree at root and reports what shifting it with opts.Map
// would do, changing nothing: not an owner, not a mode, not an access time
// of a file or directory (directories are read with O_NOATIME, files are
// never opened). Reading a symlink's target may update the symlink's own
// atime under relatime; Linux has no way to readlink without it.
//
// The root must be a real directory, not a symlink. Mount points below it
// are reported and not entered.
func Audit(ctx context.Context, root string, opts Options) (*Report, error) {
	w, err := newWalker(ctx, root, &opts, modeAudit, auditor{})
	if err != nil {
		return nil, err
	}
	defer w.close()
	if err := w.run(); err != nil {
		return nil, err
	}
	return w.rep.report(root), nil
}

// auditor only counts: the walker's classification and planning is the audit.
type auditor struct{}

func (auditor) entries(*walker, *dirState, []*entry) error { return nil }
func (auditor) enterDir(*walker, *dirState) error          { return nil }
func (auditor) listed(*walker, *dirState) error            { return nil }
func (auditor) leaveDir(*walker, *dirState) error          { return nil }
func (auditor) closeDir(*dirState)                         {}
