# Synthetic TV filenames -> series name, for workflow 000 (filename classifier).
#   awk -v seed=1 -v n=40 -v offset=0 -f filenames.awk
# n filenames per series; offset shifts the episode numbers (feedback rows
# are new episodes). Columns: text,label,confidence,source.
# Labels come in mixed case on purpose: the import normalizes them (upper case).
BEGIN {
    srand (seed + 0);
    ns = split ("The Expanse|Breaking Bad|Doctor Who|The Office|Star Trek Discovery|" \
                "Better Call Saul|Stranger Things|The Crown|Dark|Fargo|Mr Robot|Sherlock", S, "|");
    nq = split ("720p|1080p|2160p|480p|HDTV|WEB-DL|WEBRip|BluRay", Q, "|");
    nc = split ("x264|x265|H.264|HEVC|XviD", C, "|");
    ng = split ("LOL|DIMENSION|KILLERS|NTb|FLEET|SVA|ION10|GalaxyTV|RARBG|MeGusta", G, "|");
    ne = split ("mkv|mp4|avi", E, "|");
    nsrc = split ("import|import|import|auto|feedback", SRC, "|");
    print "text,label,confidence,source";
    for (i = 0; i < n; i++)
        for (s = 1; s <= ns; s++) {
            season = 1 + int (rand () * 6);
            ep = 1 + ((i + offset) % 24);
            name = S[s];
            style = int (rand () * 4);
            q = Q[1 + int (rand () * nq)]; c = C[1 + int (rand () * nc)];
            g = G[1 + int (rand () * ng)]; e = E[1 + int (rand () * ne)];
            if (style == 0) {
                t = name; gsub (/ /, ".", t);
                f = sprintf ("%s.S%02dE%02d.%s.%s-%s.%s", t, season, ep, q, c, g, e);
            } else if (style == 1) {
                t = tolower (name); gsub (/ /, "_", t);
                f = sprintf ("%s_%dx%02d_%s.%s", t, season, ep, tolower (q), e);
            } else if (style == 2) {
                f = sprintf ("%s - S%02dE%02d - Episode %d [%s].%s", name, season, ep, ep, q, e);
            } else {
                t = name; gsub (/ /, "", t);
                f = sprintf ("[%s] %s S%dE%d %s %s.%s", g, t, season, ep, q, c, e);
            }
            src = SRC[1 + int (rand () * nsrc)];
            conf = src == "feedback" ? "1.0" : src == "auto" ? sprintf ("%.2f", 0.80 + rand () * 0.19) : "0.9";
            lab = (rand () < 0.3) ? tolower (name) : name;
            gsub (/,/, "", f);
            printf "%s,%s,%s,%s\n", f, lab, conf, src;
        }
}
