# Synthetic chat messages for workflow 004 (TF-IDF classifiers with a
# feedback loop): task=personality gives 2 classes (formal, casual),
# task=engagement 3 (low, medium, high). Each message mixes words typical of
# its class with common chat words. Columns: text,label,source.
#   awk -v seed=5 -v n=300 -v task=personality [-v src=feedback] -f chat.awk
BEGIN {
    srand (seed + 0);
    if (task == "engagement") {
        nl = split ("low|medium|high", L, "|");
        P[1] = "ok fine whatever k sure meh maybe later busy bye hmm nope";
        P[2] = "interesting tell more thanks good idea okay sounds nice cool let see";
        P[3] = "wow amazing love awesome excited tell everything more please fantastic great brilliant absolutely";
    } else {
        nl = split ("formal|casual", L, "|");
        P[1] = "regards kindly please sincerely appreciate request assistance furthermore therefore inform would grateful";
        P[2] = "hey lol yeah gonna cool dude wanna omg btw thx haha nah";
    }
    nf = split ("i you the a to it is that this what do can about my we for and of", F, " ");
    if (src == "") src = "import";
    print "text,label,source";
    for (i = 0; i < n; i++) {
        c = 1 + (i % nl);
        nw = split (P[c], W, " ");
        len = 6 + int (rand () * 8);
        t = "";
        for (k = 0; k < len; k++) {
            r = rand ();
            if (r < 0.45)
                w = W[1 + int (rand () * nw)];
            else if (r < 0.55) {
                o = 1 + int (rand () * nl);
                split (P[o], X, " "); w = X[1 + int (rand () * 11)];
            } else
                w = F[1 + int (rand () * nf)];
            t = t (k ? " " : "") w;
        }
        print t "," L[c] "," src;
    }
}
