# Synthetic frame annotations for workflow 002 (frame-importance regressor):
# one JSON object per line: the frame's path, the user's rating in [0, 1] and
# 8 frame features in [0, 1] (motion, faces, brightness, contrast, audio
# level, scene change, text overlay, saturation). The rating follows a fixed
# function of the features plus noise, so a model can learn it.
#   awk -v seed=2 -v n=400 [-v bad=1] -f frames.awk
# bad=1 adds a few rows the import must reject (rating outside [0, 1], empty path).
BEGIN {
    srand (seed + 0);
    for (i = 0; i < n; i++) {
        for (k = 1; k <= 8; k++)
            f[k] = rand ();
        z = 2.2 * f[1] + 1.6 * f[2] + 0.4 * f[4] + 1.2 * f[6] - 0.8 * f[7] - 2.1;
        r = 1 / (1 + exp (-2 * z)) + (rand () - 0.5) * 0.1;
        r = r < 0 ? 0 : r > 1 ? 1 : r;
        printf "{\"path\": \"videos/v%02d/frame%05d.jpg\", \"rating\": %.3f, \"features\": [", \
               i % 17, i, r;
        for (k = 1; k <= 8; k++)
            printf "%s%.4f", (k > 1 ? ", " : ""), f[k];
        print "]}";
    }
    if (bad) {
        print "{\"path\": \"videos/v01/frame99990.jpg\", \"rating\": 1.3, \"features\": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}";
        print "{\"path\": \"\", \"rating\": 0.5, \"features\": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}";
    }
}
