package dashboard

import (
	"fmt"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

func plateRec(at time.Time, lane, typ, ev, id, sensor string) stream.Record {
	return stream.Record{ArrivalTime: at, PartitionKey: "demo-store/" + lane, Data: []byte(fmt.Sprintf(
		`{"store":"demo-store","lane":%q,"plate_type":%q,"event":%q,"plate_id":%q,"sensor":%q,"ts":%q}`,
		lane, typ, ev, id, sensor, at.UTC().Format(time.RFC3339Nano)))}
}

func beat(at time.Time, lane, sensor string, ok bool) stream.Record {
	return stream.Record{ArrivalTime: at, Data: []byte(fmt.Sprintf(`{"sensor":%q,"lane":%q,"ok":%t,"ts":"x"}`, sensor, lane, ok))}
}

func TestPlatesView(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 30, 30, 0, time.UTC)
	p := NewPlates(PlatesOptions{})
	var recs []stream.Record
	// Lane 1: 6 salmon placed 20 minutes ago, 3 taken in the last 10
	// minutes, 2 passing each minute for the last 3 minutes.
	for i := 0; i < 6; i++ {
		recs = append(recs, plateRec(now.Add(-20*time.Minute), "1", "salmon", "placed", fmt.Sprint("s", i), "lane1-k"))
	}
	for i := 0; i < 3; i++ {
		recs = append(recs, plateRec(now.Add(-time.Duration(i+1)*time.Minute), "1", "salmon", "taken", fmt.Sprint("s", i), "lane1-ir1"))
	}
	for m := 0; m < 3; m++ {
		for j := 0; j < 2; j++ {
			recs = append(recs, plateRec(now.Add(-time.Duration(m)*time.Minute), "1", "salmon", "passed", fmt.Sprint("s", 3+j), "lane1-ir1"))
		}
	}
	// Lane 2: tuna taken fast (20 in 10 minutes) with one on the belt.
	recs = append(recs, plateRec(now.Add(-11*time.Minute), "2", "tuna", "placed", "t-left", "lane2-k"))
	for i := 0; i < 20; i++ {
		recs = append(recs, plateRec(now.Add(-time.Duration(i%9)*time.Minute), "2", "tuna", "taken", fmt.Sprint("t", i), "lane2-ir1"))
	}
	// A sensor that went quiet, one that reports a fault, junk.
	recs = append(recs, beat(now.Add(-5*time.Minute), "2", "lane2-old", true), beat(now.Add(-time.Second), "2", "lane2-bad", false))
	recs = append(recs, stream.Record{ArrivalTime: now, Data: []byte("not json")},
		stream.Record{ArrivalTime: now, Data: []byte(`{"event":"exploded","plate_type":"ebi"}`)},
		plateRec(now.Add(-2*time.Hour), "1", "ebi", "passed", "old", "x")) // older than the history
	p.Add(recs, true)

	p.Expire(now) // "old" has been off the belt for long
	v := p.View(now)
	if v.Bad != 2 {
		t.Errorf("bad = %d, want 2", v.Bad)
	}
	types := map[string]TypeStats{}
	for _, ts := range v.Types {
		types[ts.PlateType] = ts
	}
	s := types["salmon"]
	if s.Placed != 6 || s.Taken != 3 || s.Passed != 6 || s.OnBelt != 3 {
		t.Errorf("salmon = %+v, want placed 6 taken 3 passed 6 on belt 3", s)
	}
	// 3 taken over the 10-minute window (9.5 minutes elapsed) = 0.32/min;
	// 5 minutes of cover needs 2 plates, 3 on the belt: nothing to make.
	if s.TakePerMin != 0.32 || s.Need != 0 {
		t.Errorf("salmon take %.2f need %d, want 0.32 and 0", s.TakePerMin, s.Need)
	}
	tu := types["tuna"]
	if tu.Taken != 20 || tu.OnBelt != 1 || tu.TakePerMin != 2.11 || tu.Need != 10 {
		t.Errorf("tuna = %+v, want taken 20, on belt 1, 2.11/min, need 10", tu)
	}
	if len(v.MakeNext) != 1 || v.MakeNext[0].PlateType != "tuna" {
		t.Errorf("make next = %+v, want only tuna", v.MakeNext)
	}
	if _, ok := types["ebi"]; !ok {
		// ebi was seen (outside the window): it is listed with zeros.
		t.Errorf("ebi missing from types")
	}
	if types["ebi"].Passed != 0 {
		t.Errorf("ebi from 2h ago counted in the 1h window")
	}
	if got := v.PassedPerMinute["salmon"]; len(got) != 60 || got[59] != 2 || got[58] != 2 || got[57] != 2 || got[56] != 0 {
		t.Errorf("salmon passes per minute tail %v", got[55:])
	}
	if v.Minutes[59] != now.Unix()/60*60 {
		t.Errorf("last minute %d, want %d", v.Minutes[59], now.Unix()/60*60)
	}
	if fmt.Sprint(v.SilentSensors) != "[lane1-k lane2-k lane2-old x]" {
		t.Errorf("silent = %v", v.SilentSensors)
	}
	for _, se := range v.Sensors {
		if se.Sensor == "lane2-bad" && (se.OK || se.Silent) {
			t.Errorf("lane2-bad = %+v, want a fault that is not silent", se)
		}
	}
	if len(v.Lanes) != 2 || v.Lanes[0].Lane != "1" || v.Lanes[0].Passed != 6 || v.Lanes[1].Taken != 20 {
		t.Errorf("lanes = %+v", v.Lanes)
	}
	// A view only reads: plates past PlateTTL stay until Expire runs.
	later := now.Add(31 * time.Minute)
	if again := p.View(later); again.OnBelt != v.OnBelt {
		t.Errorf("on belt after TTL without Expire = %d, want %d (View must not change state)", again.OnBelt, v.OnBelt)
	}
	// Plates unseen for longer than PlateTTL leave the belt.
	p.Expire(later)
	if later := p.View(later); later.OnBelt != 0 {
		t.Errorf("on belt after TTL = %d, want 0", later.OnBelt)
	}
}

func TestPlatesCaps(t *testing.T) {
	now := time.Now()
	p := NewPlates(PlatesOptions{})
	var recs []stream.Record
	for i := 0; i < maxPlateTypes+10; i++ {
		recs = append(recs, plateRec(now, fmt.Sprint(i), fmt.Sprint("type", i), "placed", fmt.Sprint("p", i), fmt.Sprint("s", i)))
	}
	p.Add(recs, false)
	v := p.View(now)
	if len(v.Types) != maxPlateTypes+1 {
		t.Fatalf("%d types, want %d plus %q", len(v.Types), maxPlateTypes, otherName)
	}
	if len(p.liveCounts()) != 0 {
		t.Fatalf("replayed records counted as live")
	}
}

func TestDeadLetters(t *testing.T) {
	now := time.Now()
	d := NewDeadLetters(time.Hour)
	d.Add([]stream.Record{
		{ArrivalTime: now.Add(-2 * time.Hour), Data: []byte(`{"source":"mqtt","topic":"a","reason":"old"}`)},
		{ArrivalTime: now.Add(-time.Minute), Data: []byte(`{"source":"mqtt","topic":"store/x","reason":"bad json"}`)},
		{ArrivalTime: now, Data: []byte(`{"source":"gpio","reason":"r"}`)},
		{ArrivalTime: now, Data: []byte(`garbage`)},
	}, true)
	v := d.view(now)
	if v.Total != 3 || v.LastHour["mqtt"] != 1 || v.LastHour["gpio"] != 1 || v.LastHour["unknown"] != 1 {
		t.Fatalf("view %+v", v)
	}
	if len(v.Recent) != 4 || v.Recent[0].Source != "unknown" || v.Recent[3].Reason != "old" {
		t.Fatalf("recent %+v, want newest first", v.Recent)
	}
	if d.liveCounts()["mqtt"] != 2 {
		t.Fatalf("live counts %v", d.liveCounts())
	}
}
