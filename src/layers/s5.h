/* s5: the HiPPO-N initialisation of the S5 layer (layer_s5 is in layer.h), for tests. */
#ifndef RNNTRAIN_S5_H
#define RNNTRAIN_S5_H

#include <complex.h>

/* One HiPPO-N block of size Pb: S = A_LegS + p p^T is -1/2 I plus a skew-symmetric K; the
 * eigenvalues of S are -1/2 + i w, with w and the eigenvectors those of the Hermitian
 * -i K (LAPACK zheev). im (Pb) gets w ascending; V (Pb*Pb, column-major: V[k + i*Pb] is
 * entry k of eigenvector i) the orthonormal eigenvectors, if non-NULL. Returns 0, or the
 * LAPACK info on failure. */
int s5_hippo_n(int Pb, double *im, double complex *V);

/* S[n*Pb + k] (row-major, Pb*Pb) the dense HiPPO-N normal part, for checks. */
void s5_hippo_normal_part(int Pb, double *S);

#endif
