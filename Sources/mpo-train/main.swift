import MPOKit
print("mpo-train")
