package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// plantTemp writes data where an interrupted write of account's record
// would have left it.
func plantTemp(t *testing.T, s *FileStore, account, suffix string, data []byte) string {
	t.Helper()
	p := filepath.Join(s.tokens, "."+account+recordExt+".tmp-"+suffix)
	writeRaw(t, p, data)
	return p
}

// encryptRecord is what a killed writer had synced: the whole record.
func encryptRecord(t *testing.T, s *FileStore, rec *Record) []byte {
	t.Helper()
	b, err := s.encrypt(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leftoverNames lists the temp files in the tokens folder.
func leftoverNames(t *testing.T, s *FileStore) []string {
	t.Helper()
	entries, err := os.ReadDir(s.tokens)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// newer returns a record of account with refresh token rt-token written d
// after the test records.
func newer(account, token string, d time.Duration) *Record {
	r := testRecord(account, token)
	r.Updated = r.Updated.Add(d)
	r.LastRefresh = r.Updated
	return r
}

// TestRecoverInterruptedWrite plants, next to a good record, what writes
// killed at various points leave, and checks what the next Get makes of it.
func TestRecoverInterruptedWrite(t *testing.T) {
	other := openTest(t, stateDir(t), nil)
	cases := []struct {
		name    string
		plant   func(t *testing.T, s *FileStore)
		want    string // refresh token Get returns
		adopted bool
	}{
		{"complete and newer", func(t *testing.T, s *FileStore) {
			plantTemp(t, s, "a", "123456789", encryptRecord(t, s, newer("a", "second", time.Minute)))
		}, "rt-second", true},
		{"newer by its last refresh only", func(t *testing.T, s *FileStore) {
			r := testRecord("a", "second")
			r.LastRefresh = r.Updated.Add(time.Second)
			plantTemp(t, s, "a", "1", encryptRecord(t, s, r))
		}, "rt-second", true},
		{"incomplete", func(t *testing.T, s *FileStore) {
			b := encryptRecord(t, s, newer("a", "second", time.Minute))
			plantTemp(t, s, "a", "2", b[:len(b)-3])
		}, "rt-first", false},
		{"empty", func(t *testing.T, s *FileStore) {
			plantTemp(t, s, "a", "3", nil)
		}, "rt-first", false},
		{"older", func(t *testing.T, s *FileStore) {
			plantTemp(t, s, "a", "4", encryptRecord(t, s, newer("a", "zero", -time.Minute)))
		}, "rt-first", false},
		{"as old", func(t *testing.T, s *FileStore) {
			plantTemp(t, s, "a", "5", encryptRecord(t, s, testRecord("a", "same-time")))
		}, "rt-first", false},
		{"another account's record", func(t *testing.T, s *FileStore) {
			plantTemp(t, s, "a", "6", encryptRecord(t, s, newer("b", "other", time.Minute)))
		}, "rt-first", false},
		{"another store's key", func(t *testing.T, s *FileStore) {
			plantTemp(t, s, "a", "7", encryptRecord(t, other, newer("a", "other-key", time.Minute)))
		}, "rt-first", false},
		{"the newest of several", func(t *testing.T, s *FileStore) {
			plantTemp(t, s, "a", "8", encryptRecord(t, s, newer("a", "second", time.Minute)))
			plantTemp(t, s, "a", "9", encryptRecord(t, s, newer("a", "third", 2*time.Minute)))
			b := encryptRecord(t, s, newer("a", "fourth", 3*time.Minute))
			plantTemp(t, s, "a", "10", b[:len(b)/2])
		}, "rt-third", true},
		{"a backup's temp file", func(t *testing.T, s *FileStore) {
			writeRaw(t, filepath.Join(s.tokens, ".a.age.bak.tmp-ABCDEFGH2345"), encryptRecord(t, s, newer("a", "bak", time.Minute)))
		}, "rt-first", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openTest(t, stateDir(t), nil)
			mustPut(t, s, testRecord("a", "first"))
			mustPut(t, s, testRecord("b", "b"))
			c.plant(t, s)
			got := mustGet(t, s, "a")
			if got.RefreshToken != c.want {
				t.Errorf("Get: refresh token %q, want %q", got.RefreshToken, c.want)
			}
			if adopted := !got.Recovered.IsZero(); adopted != c.adopted {
				t.Errorf("Get: recovered %v, want %v", got.Recovered, c.adopted)
			}
			if left := leftoverNames(t, s); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
			if got := mustGet(t, s, "b").RefreshToken; got != "rt-b" {
				t.Errorf("account b: %q", got)
			}
			if !c.adopted {
				return
			}
			// The replaced record is the backup, and it knows its refresh
			// token was replaced.
			if b := readBackup(t, s, "a"); b.RefreshToken != "rt-first" || restorable(b) {
				t.Errorf("backup after the recovery: %v", b)
			}
			// The mark stays until the next write, which clears it.
			if again := mustGet(t, s, "a"); !again.Recovered.Equal(got.Recovered) {
				t.Errorf("second Get: recovered %v, want %v", again.Recovered, got.Recovered)
			}
			mustPut(t, s, got)
			if again := mustGet(t, s, "a"); !again.Recovered.IsZero() || again.RefreshToken != c.want {
				t.Errorf("after the next Put: %v", again)
			}
		})
	}
}

// An account whose first write was interrupted has only a temp file: Get
// adopts it, and List lists the account.
func TestRecoverFirstWrite(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, stateDir(t), nil)
	plantTemp(t, s, "new", "42", encryptRecord(t, s, testRecord("new", "first")))
	names, err := s.List(ctx)
	if err != nil || !slices.Equal(names, []string{"new"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	if got := mustGet(t, s, "new"); got.RefreshToken != "rt-first" || got.Recovered.IsZero() {
		t.Errorf("Get = %v", got)
	}
	if left := leftoverNames(t, s); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := os.Stat(s.recordPath("new") + backupExt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a first write made a backup: %v", err)
	}
}

// A complete temp record beside an unreadable one is adopted; the
// unreadable file is kept, moved aside.
func TestRecoverOverCorrupt(t *testing.T) {
	s := openTest(t, stateDir(t), nil)
	writeRaw(t, s.recordPath("a"), []byte("junk"))
	plantTemp(t, s, "a", "7", encryptRecord(t, s, testRecord("a", "second")))
	if got := mustGet(t, s, "a"); got.RefreshToken != "rt-second" || got.Recovered.IsZero() {
		t.Errorf("Get = %v", got)
	}
	if aside := corruptCopies(t, s, "a"); len(aside) != 1 {
		t.Errorf("corrupt copies = %v, want one", aside)
	}
}

// Put, Delete and Recover finish the leftovers too, so none survives the
// next command.
func TestRecoverOnWrite(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, stateDir(t), nil)
	mustPut(t, s, testRecord("a", "first"))
	plantTemp(t, s, "a", "1", encryptRecord(t, s, newer("a", "second", time.Minute)))
	third := newer("a", "third", 2*time.Minute)
	mustPut(t, s, third)
	if b := readBackup(t, s, "a"); b.RefreshToken != "rt-second" || b.Recovered.IsZero() == false {
		t.Errorf("backup after a Put over leftovers: %v (want the adopted record, unmarked)", b)
	}
	if left := leftoverNames(t, s); len(left) != 0 {
		t.Errorf("Put left %v", left)
	}

	plantTemp(t, s, "a", "2", encryptRecord(t, s, newer("a", "fourth", 3*time.Minute)))
	if rec, err := s.Recover(ctx, "a"); err != nil || rec.RefreshToken != "rt-fourth" {
		t.Errorf("Recover = %v, %v", rec, err)
	}

	plantTemp(t, s, "a", "3", encryptRecord(t, s, newer("a", "fifth", 4*time.Minute)))
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if left := leftoverNames(t, s); len(left) != 0 {
		t.Errorf("Delete left %v", left)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
}

// TestRecoverSparesLiveWriter: a reader that finds the temp file of a write
// still under way (its writer about to rename it) neither takes it nor waits
// for the write: it reads the record in place; the writer's rename then
// succeeds.
func TestRecoverSparesLiveWriter(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	writer := openTest(t, dir, nil)
	reader := openTest(t, dir, nil) // another store: only the file locks order them
	mustPut(t, writer, testRecord("a", "first"))

	inWrite, release := make(chan struct{}), make(chan struct{})
	beforeRename = func() error {
		close(inWrite)
		<-release
		return nil
	}
	defer func() { beforeRename = nil }()
	done := make(chan error, 1)
	go func() { done <- writer.Put(ctx, newer("a", "second", time.Minute)) }()
	<-inWrite

	waitingForWrites = func() { t.Error("a reader waited for a write under way") }
	rec, err := reader.Get(ctx, "a")
	waitingForWrites = nil
	if err != nil || rec.RefreshToken != "rt-first" || !rec.Recovered.IsZero() {
		t.Errorf("Get during a write = %v, %v; want the record in place", rec, err)
	}
	if left := leftoverNames(t, reader); len(left) != 1 {
		t.Errorf("during the write the folder holds %v, want the writer's temp file", left)
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the writer's Put: %v", err)
	}
	if rec := mustGet(t, reader, "a"); rec.RefreshToken != "rt-second" || !rec.Recovered.IsZero() {
		t.Errorf("after the write: %v", rec)
	}
	if left := leftoverNames(t, reader); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestRecoverSparesStagedWrite: a Put writes the new record to its locked
// temp file before it takes the write lock, so that a kill from then on
// loses nothing. A recovery that runs in that moment, under the write lock
// (another writer of the same account, a List, a reader), leaves the
// staged file alone, and the staged record still lands.
func TestRecoverSparesStagedWrite(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	writer := openTest(t, dir, nil)
	other := openTest(t, dir, nil)
	mustPut(t, writer, testRecord("a", "first"))

	staged, resume := make(chan struct{}), make(chan struct{})
	afterStage = func() {
		afterStage = nil // the other store's writes run straight through
		close(staged)
		<-resume
	}
	defer func() { afterStage = nil }()
	done := make(chan error, 1)
	go func() { done <- writer.Put(ctx, newer("a", "second", time.Minute)) }()
	<-staged

	if err := other.recoverAll(ctx, []string{"a"}); err != nil {
		t.Fatalf("recovery during a staged write: %v", err)
	}
	mustPut(t, other, newer("a", "other", time.Second))
	if names, err := other.List(ctx); err != nil || !slices.Equal(names, []string{"a"}) {
		t.Errorf("List = %v, %v", names, err)
	}
	if rec := mustGet(t, other, "a"); rec.RefreshToken != "rt-other" || !rec.Recovered.IsZero() {
		t.Errorf("during the staged write: %v, want the other write's record, not recovered", rec)
	}
	if left := leftoverNames(t, other); len(left) != 1 {
		t.Errorf("during the staged write the folder holds %v, want the staged temp file", left)
	}

	close(resume)
	if err := <-done; err != nil {
		t.Fatalf("the staged Put: %v", err)
	}
	if rec := mustGet(t, other, "a"); rec.RefreshToken != "rt-second" || !rec.Recovered.IsZero() {
		t.Errorf("after the staged write: %v", rec)
	}
	if left := leftoverNames(t, other); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestPutKeepsStagedRecord: a Put that stages its record but cannot take
// the write lock (its context ends while another process holds it) leaves
// the staged record behind for the next read, as a kill would: it may hold
// the only copy of a rotated refresh token.
func TestPutKeepsStagedRecord(t *testing.T) {
	ctx := context.Background()
	dir := stateDir(t)
	writer := openTest(t, dir, nil)
	holder := openTest(t, dir, nil)
	mustPut(t, writer, testRecord("a", "first"))

	unlock, err := holder.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	afterStage = cancel
	err = writer.Put(short, newer("a", "second", time.Minute))
	afterStage = nil
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put that cannot take the write lock: %v, want context.Canceled", err)
	}
	unlock()

	if rec := mustGet(t, holder, "a"); rec.RefreshToken != "rt-second" || rec.Recovered.IsZero() {
		t.Errorf("after the interrupted Put: %v, want its record, marked recovered", rec)
	}
	if left := leftoverNames(t, holder); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
