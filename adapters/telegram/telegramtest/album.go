package telegramtest

import (
	"encoding/json"
	"strconv"
	"strings"
)

// inputMedia is one item of sendMediaGroup's media parameter (InputMediaPhoto,
// InputMediaVideo, InputMediaDocument or InputMediaAudio).
type inputMedia struct {
	Type      string `json:"type"`
	Media     string `json:"media"`
	Caption   string `json:"caption"`
	ParseMode string `json:"parse_mode"`
}

// sendMediaGroup sends 2–10 photos and videos (or 2–10 documents, or 2–10 audios) as one album,
// as Telegram does: media is a JSON array whose items name their upload as attach://<field>,
// every item is checked before any is sent, and the answer is the array of messages created,
// sharing a media_group_id. An album is sent whole or not at all.
func (s *Server) sendMediaGroup(p params, files map[string]*Upload) (any, *apiError) {
	var items []inputMedia
	if err := json.Unmarshal([]byte(p["media"]), &items); err != nil || p["media"] == "" {
		e := badRequest("can't parse media JSON object")
		return nil, &e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, apiErr := s.sendTargetLocked(p)
	if apiErr != nil {
		return nil, apiErr
	}
	if len(items) < 2 || len(items) > 10 {
		e := badRequest("wrong number of media in the group: must be 2-10")
		return nil, &e
	}
	type checked struct {
		item     inputMedia
		up       *Upload
		caption  string
		entities []Entity
	}
	var (
		all   []checked
		kinds = map[string]bool{}
	)
	for i, it := range items {
		n := "#" + strconv.Itoa(i+1)
		switch it.Type {
		case "photo", "video", "document", "audio":
		default:
			e := badRequest("wrong type of media " + n + " in the group")
			return nil, &e
		}
		kinds[it.Type] = true
		var up *Upload
		if field, ok := strings.CutPrefix(it.Media, "attach://"); ok {
			up = files[field]
			if up == nil {
				e := badRequest("failed to send message " + n + " with the error message \"MEDIA_EMPTY\"")
				return nil, &e
			}
			if up.Size == 0 {
				e := badRequest("file must be non-empty")
				return nil, &e
			}
		} else if it.Media != "" {
			up = &Upload{Field: it.Type, Name: it.Media} // a file_id or URL
		} else {
			e := badRequest("media " + n + " is empty")
			return nil, &e
		}
		if it.Type == "photo" && s.rejectPhotos {
			e := badRequest("failed to send message " + n + " with the error message \"IMAGE_PROCESS_FAILED\"")
			return nil, &e
		}
		caption, entities, apiErr := parseText(it.Caption, it.ParseMode, maxCaptionLen, "message caption is too long")
		if apiErr != nil {
			return nil, apiErr
		}
		all = append(all, checked{item: it, up: up, caption: caption, entities: entities})
	}
	// Photos and videos mix; documents and audios go only with their own kind.
	if (kinds["document"] || kinds["audio"]) && len(kinds) > 1 {
		e := badRequest("wrong type of media in the group: documents and audios can't be mixed with other media types")
		return nil, &e
	}
	if p["reply_markup"] != "" {
		// The Bot API has no reply_markup for albums; Telegram ignores it. The fake refuses it,
		// so a keyboard the bot meant to show cannot silently vanish in tests.
		e := badRequest("reply_markup is not supported for media groups")
		return nil, &e
	}
	s.nextGroup++
	group := "album-" + strconv.Itoa(s.nextGroup)
	var out []wireMessage
	for _, ck := range all {
		m, sm, apiErr := s.newBotMessageLocked(c, params{"reply_parameters": p["reply_parameters"]})
		if apiErr != nil {
			return nil, apiErr
		}
		sf := s.addFileLocked(File{Data: ck.up.Data, Size: ck.up.Size}, ck.item.Type+"s")
		fj, _ := json.Marshal(map[string]any{"file_id": sf.id, "file_unique_id": sf.uniqueID, "file_size": sf.size})
		switch ck.item.Type {
		case "photo":
			m.Photo = json.RawMessage("[" + string(fj) + "]")
		case "video":
			m.Video = fj
		case "document":
			m.Document = fj
		case "audio":
			m.Audio = fj
		}
		m.MediaGroupID = group
		m.Caption, m.CaptionEntities = ck.caption, toWire(ck.entities)
		sm.Method, sm.MediaGroupID, sm.ParseMode = "sendMediaGroup", group, ck.item.ParseMode
		sm.Text, sm.Raw, sm.Entities, sm.File = ck.caption, ck.item.Caption, ck.entities, ck.up
		out = append(out, s.recordLocked(c, m, sm))
	}
	return out, nil
}
