# Synthetic abstracts with taxonomy codes for workflow 003 (multi-label text
# classifier): 1 or 2 codes per text, words drawn mostly from each code's
# vocabulary. Columns: text,labels (codes joined with '|').
#   awk -v seed=3 -v n=600 -f papers.awk
BEGIN {
    srand (seed + 0);
    nc = split ("cs.ai|cs.db|math.st|physics.optics|q-bio.gn|econ.th", CODE, "|");
    V[1] = "neural network learning agent reinforcement policy inference transformer gradient reasoning planning model";
    V[2] = "query index transaction database storage relational schema join btree replication consistency sql";
    V[3] = "estimator variance bayesian posterior likelihood regression hypothesis sampling asymptotic prior bootstrap confidence";
    V[4] = "laser photon lens optical wavelength beam interference fiber refraction diffraction polarization cavity";
    V[5] = "genome sequencing gene expression dna variant protein chromosome transcription alignment mutation rna";
    V[6] = "equilibrium utility market auction incentive game welfare pricing contract mechanism preference agent";
    for (c = 1; c <= nc; c++)
        nv[c] = split (V[c], W, " ");
    nf = split ("we propose a novel method for the study of results show that our approach improves on prior work in this paper", F, " ");
    print "text,labels";
    for (i = 0; i < n; i++) {
        a = 1 + int (rand () * nc);
        b = rand () < 0.4 ? 1 + int (rand () * nc) : a;
        len = 10 + int (rand () * 8);
        t = "";
        for (k = 0; k < len; k++) {
            r = rand ();
            if (r < 0.35) {
                split (V[a], W, " "); w = W[1 + int (rand () * nv[a])];
            } else if (r < 0.70 && b != a) {
                split (V[b], W, " "); w = W[1 + int (rand () * nv[b])];
            } else if (r < 0.70) {
                split (V[a], W, " "); w = W[1 + int (rand () * nv[a])];
            } else
                w = F[1 + int (rand () * nf)];
            t = t (k ? " " : "") w;
        }
        labs = CODE[a];
        if (b != a)
            labs = a < b ? CODE[a] "|" CODE[b] : CODE[b] "|" CODE[a];
        print t "," labs;
    }
}
