# Synthetic user-item interactions for workflow 003 (NCF recommender): users
# prefer one or two of 6 genres; items belong to one genre; 85 % of a user's
# interactions are in a preferred genre. Columns: user,item,rating (0-1),timestamp.
#   awk -v seed=4 -v users=150 -v items=240 -f ratings.awk
BEGIN {
    srand (seed + 0);
    ng = 6;
    print "user,item,rating,timestamp";
    t0 = 1767225600;
    for (u = 0; u < users; u++) {
        g1 = int (rand () * ng); g2 = rand () < 0.5 ? int (rand () * ng) : g1;
        m = 15 + int (rand () * 11);
        delete seen;
        for (k = 0; k < m; k++) {
            g = rand () < 0.85 ? (rand () < 0.5 ? g1 : g2) : int (rand () * ng);
            it = g + ng * int (rand () * (items / ng));
            if (it in seen)
                continue;
            seen[it] = 1;
            printf "u%03d,i%03d,%.1f,%d\n", u, it, (3 + int (rand () * 3)) / 5, t0 + u * 1000 + k * 60;
        }
    }
}
