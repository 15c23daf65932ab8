package pebblestore

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open. The zero value is usable: Open calls
// EnsureDefaults, then Validate.
type Options struct {
	// FS is the filesystem. Default: vfs.Default (the operating system's).
	// Tests use vfs.NewMem or vfs.NewCrashableMem, and vfs/errorfs to inject
	// I/O errors.
	FS vfs.FS

	// WALDir puts the write-ahead log in another directory (say, on a
	// faster device). Default: "" (inside the database directory).
	WALDir string

	// Logger receives Pebble's log lines (Info and Error levels; Pebble's
	// fatal errors are logged at Error level and fail the database, see
	// ErrFailed). Default: slog.Default().
	Logger *slog.Logger

	// CacheSize is the block cache size in bytes, shared by every group.
	// Default: 64 MiB. Minimum: 1 MiB.
	CacheSize int64

	// MemTableSize is the size in bytes of one memtable. Larger memtables
	// absorb more of the log before it is flushed (a compacted prefix that is
	// still in the memtable never reaches an sstable). Default: 32 MiB.
	// Range: 1 MiB to 1 GiB.
	MemTableSize uint64

	// MaxOpenFiles bounds the open table files. Default: 1000. Minimum: 16.
	MaxOpenFiles int
}

const (
	mib                 = 1 << 20
	defaultCacheSize    = 64 * mib
	defaultMemTableSize = 32 * mib
	defaultMaxOpenFiles = 1000
)

// EnsureDefaults fills the unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = defaultMemTableSize
	}
	if o.MaxOpenFiles == 0 {
		o.MaxOpenFiles = defaultMaxOpenFiles
	}
}

// Validate reports every invalid field at once, each with its value.
func (o *Options) Validate() error {
	var errs []error
	if o.FS == nil {
		errs = append(errs, errors.New("pebblestore: Options.FS is nil"))
	}
	if o.Logger == nil {
		errs = append(errs, errors.New("pebblestore: Options.Logger is nil"))
	}
	if o.CacheSize < mib {
		errs = append(errs, fmt.Errorf("pebblestore: Options.CacheSize is %d, want at least %d (1 MiB)", o.CacheSize, mib))
	}
	if o.MemTableSize < mib || o.MemTableSize > 1<<30 {
		errs = append(errs, fmt.Errorf("pebblestore: Options.MemTableSize is %d, want 1 MiB to 1 GiB", o.MemTableSize))
	}
	if o.MaxOpenFiles < 16 {
		errs = append(errs, fmt.Errorf("pebblestore: Options.MaxOpenFiles is %d, want at least 16", o.MaxOpenFiles))
	}
	return errors.Join(errs...)
}
